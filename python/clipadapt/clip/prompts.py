"""Class names and CLIP prompt templates for the ReCLIP datasets (source-free adaptation of CLIP).

Each dataset is a :class:`DatasetPrompts`: its class names, in the label order of the dataset's standard loader
(torchvision's dataset class, or the sorted folder names of an image folder), and its prompt templates, where "{}"
stands for the class name (CLIP's style: ``template.format(classname)``). :meth:`DatasetPrompts.prompts` gives the
prompts of one class, to be averaged into a template-ensemble classifier as in CLIP's zero-shot evaluation;
:meth:`DatasetPrompts.first_prompts` gives one prompt per class from ``templates[0]`` (ReCLIP-T's single-template
prompts). A class may have synonyms (FER2013's "happy" / "smiling"): its prompts then ensemble every template with
every synonym.

Sources (the comments at each dataset say what differs between them):

* CLIP: ``data/prompts.md`` of github.com/openai/CLIP (class names and templates of the paper's zero-shot
  evaluation) and, for ImageNet, its ``notebooks/Prompt_Engineering_for_ImageNet.ipynb``.
* ReCLIP: ``prompts/clip_prompts`` and ``datasets.py`` of github.com/michiganleon/ReCLIP_WACV (dataset keys,
  AID / Office-31 / Office-Home class lists, label orders).

Two variants (:data:`VARIANTS`): ``"released"`` (:data:`DATASETS`, the default) holds ReCLIP's names and templates;
``"clip"`` (:data:`CLIP_VARIANTS`) CLIP's where they differ (PCam, Caltech101, ImageNet's 80 templates) and readable
names for the folder-named AID and Office-31 classes. Both follow the label order of the standard loaders and keep
CLIP's letter case where ReCLIP's file capitalises differently (CLIP's tokenizer lowercases all text, so the case is
not seen by the model).

An image folder is matched to its dataset by its class folder names (:func:`match_folder`: ImageNet's wnids, or names
equal up to case, spaces and punctuation, e.g. Office-Home's ``Alarm_Clock``), so that it gets the dataset's prompts.
"""
from __future__ import annotations

import operator
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources

__all__ = ["ALIASES", "CLIP_VARIANTS", "DATASETS", "VARIANTS", "DatasetPrompts", "from_folder", "get_prompts",
           "imagenet_wnids", "match_folder", "prompts_for_folder"]

PLACEHOLDER = "{}"
VARIANTS = ("released", "clip")


@dataclass(frozen=True)
class DatasetPrompts:
    """The class names and prompt templates of one dataset.

    Attributes:
        name: the dataset key (ReCLIP's spelling, e.g. ``"standford_cars"``), or a free name for a folder.
        classnames: one name per class, in label order.
        templates: prompt templates, each with exactly one ``"{}"`` for the class name.
        synonyms: ``None``, or per class all its names (the first one ``classnames[i]``), ensembled
            by :meth:`prompts`.
    """

    name: str
    classnames: tuple[str, ...]
    templates: tuple[str, ...]
    synonyms: tuple[tuple[str, ...], ...] | None = None

    def __post_init__(self) -> None:
        for field in ("classnames", "templates"):
            value = getattr(self, field)
            if isinstance(value, str) or not isinstance(value, Iterable):
                raise TypeError(f"{field} must be a sequence of strings, got {type(value).__name__}")
            value = tuple(value)
            if not value:
                raise ValueError(f"{self.name!r}: {field} is empty")
            if not all(isinstance(item, str) for item in value):
                raise TypeError(f"{self.name!r}: {field} must hold strings only")
            object.__setattr__(self, field, value)
        for template in self.templates:
            if template.count(PLACEHOLDER) != 1 or "{" in template.replace(PLACEHOLDER, "") \
                    or "}" in template.replace(PLACEHOLDER, ""):
                raise ValueError(f"{self.name!r}: template {template!r} must contain exactly one '{{}}' and no other "
                                 "braces")
        if self.synonyms is not None:
            object.__setattr__(self, "synonyms", tuple(tuple(names) for names in self.synonyms))
            if [names[0] if names else None for names in self.synonyms] != list(self.classnames):
                raise ValueError(f"{self.name!r}: synonyms must hold one tuple per class, starting with its classname")

    @property
    def num_classes(self) -> int:
        return len(self.classnames)

    @property
    def classes_with_synonyms(self) -> tuple[str | tuple[str, ...], ...]:
        """Per class its name, or the tuple of its synonyms where the dataset has them (the form
        :class:`clipadapt.reclip.ReCLIP` takes, as the released code's class lists)."""
        return self.synonyms if self.synonyms is not None else self.classnames

    def prompts(self, class_index: int) -> list[str]:
        """Every template formatted with every name of class ``class_index`` (0 <= class_index <
        num_classes), template by template: ``[t.format(n) for t in templates for n in names]``."""
        index = operator.index(class_index)
        if not 0 <= index < len(self.classnames):
            raise IndexError(f"{self.name!r}: class index {index} out of range for {len(self.classnames)} classes")
        names = self.synonyms[index] if self.synonyms is not None else (self.classnames[index],)
        return [template.format(name) for template in self.templates for name in names]

    def first_prompts(self) -> list[str]:
        """``templates[0]`` formatted with every class name, in label order (ReCLIP-T's prompts)."""
        template = self.templates[0]
        return [template.format(classname) for classname in self.classnames]


# ----------------------------------------------------------------------------------------------------------------------
# Class names and templates. CLIP's strings are copied verbatim, typos included (CLIP's results were obtained with
# them); AID and Office names are derived from the datasets' folder names as each comment says.
# ----------------------------------------------------------------------------------------------------------------------

# AID (30 aerial scene classes): the dataset's folder names in sorted order (ReCLIP's label order), split at camel-case
# boundaries (the CLIP variant; not in CLIP's file). ReCLIP's file has the same names but leaves "SparseResidential" and
# "StorageTanks" unsplit (the released variant). Templates: RESISC45's (as in ReCLIP).
_AID = (
    "Airport", "Bare Land", "Baseball Field", "Beach", "Bridge", "Center", "Church", "Commercial", "Dense Residential",
    "Desert", "Farmland", "Forest", "Industrial", "Meadow", "Medium Residential", "Mountain", "Park", "Parking",
    "Playground", "Pond", "Port", "Railway Station", "Resort", "River", "School", "Sparse Residential", "Square",
    "Stadium", "Storage Tanks", "Viaduct",
)

# Birdsnap: CLIP's list (identical in ReCLIP's file), alphabetical.
_BIRDSNAP = (
    "Acadian Flycatcher", "Acorn Woodpecker", "Alder Flycatcher", "Allens Hummingbird", "Altamira Oriole",
    "American Avocet", "American Bittern", "American Black Duck", "American Coot", "American Crow", "American Dipper",
    "American Golden Plover", "American Goldfinch", "American Kestrel", "American Oystercatcher", "American Pipit",
    "American Redstart", "American Robin", "American Three toed Woodpecker", "American Tree Sparrow",
    "American White Pelican", "American Wigeon", "American Woodcock", "Anhinga", "Annas Hummingbird", "Arctic Tern",
    "Ash throated Flycatcher", "Audubons Oriole", "Bairds Sandpiper", "Bald Eagle", "Baltimore Oriole",
    "Band tailed Pigeon", "Barn Swallow", "Barred Owl", "Barrows Goldeneye", "Bay breasted Warbler", "Bells Vireo",
    "Belted Kingfisher", "Bewicks Wren", "Black Guillemot", "Black Oystercatcher", "Black Phoebe", "Black Rosy Finch",
    "Black Scoter", "Black Skimmer", "Black Tern", "Black Turnstone", "Black Vulture", "Black and white Warbler",
    "Black backed Woodpecker", "Black bellied Plover", "Black billed Cuckoo", "Black billed Magpie",
    "Black capped Chickadee", "Black chinned Hummingbird", "Black chinned Sparrow", "Black crested Titmouse",
    "Black crowned Night Heron", "Black headed Grosbeak", "Black legged Kittiwake", "Black necked Stilt",
    "Black throated Blue Warbler", "Black throated Gray Warbler", "Black throated Green Warbler",
    "Black throated Sparrow", "Blackburnian Warbler", "Blackpoll Warbler", "Blue Grosbeak", "Blue Jay",
    "Blue gray Gnatcatcher", "Blue headed Vireo", "Blue winged Teal", "Blue winged Warbler", "Boat tailed Grackle",
    "Bobolink", "Bohemian Waxwing", "Bonapartes Gull", "Boreal Chickadee", "Brandts Cormorant", "Brant",
    "Brewers Blackbird", "Brewers Sparrow", "Bridled Titmouse", "Broad billed Hummingbird", "Broad tailed Hummingbird",
    "Broad winged Hawk", "Bronzed Cowbird", "Brown Creeper", "Brown Pelican", "Brown Thrasher",
    "Brown capped Rosy Finch", "Brown crested Flycatcher", "Brown headed Cowbird", "Brown headed Nuthatch",
    "Bufflehead", "Bullocks Oriole", "Burrowing Owl", "Bushtit", "Cackling Goose", "Cactus Wren", "California Gull",
    "California Quail", "California Thrasher", "California Towhee", "Calliope Hummingbird", "Canada Goose",
    "Canada Warbler", "Canvasback", "Canyon Towhee", "Canyon Wren", "Cape May Warbler", "Carolina Chickadee",
    "Carolina Wren", "Caspian Tern", "Cassins Finch", "Cassins Kingbird", "Cassins Sparrow", "Cassins Vireo",
    "Cattle Egret", "Cave Swallow", "Cedar Waxwing", "Cerulean Warbler", "Chestnut backed Chickadee",
    "Chestnut collared Longspur", "Chestnut sided Warbler", "Chihuahuan Raven", "Chimney Swift", "Chipping Sparrow",
    "Cinnamon Teal", "Clapper Rail", "Clarks Grebe", "Clarks Nutcracker", "Clay colored Sparrow", "Cliff Swallow",
    "Common Black Hawk", "Common Eider", "Common Gallinule", "Common Goldeneye", "Common Grackle", "Common Ground Dove",
    "Common Loon", "Common Merganser", "Common Murre", "Common Nighthawk", "Common Raven", "Common Redpoll",
    "Common Tern", "Common Yellowthroat", "Connecticut Warbler", "Coopers Hawk", "Cordilleran Flycatcher",
    "Costas Hummingbird", "Couchs Kingbird", "Crested Caracara", "Curve billed Thrasher", "Dark eyed Junco",
    "Dickcissel", "Double crested Cormorant", "Downy Woodpecker", "Dunlin", "Dusky Flycatcher", "Dusky Grouse",
    "Eared Grebe", "Eastern Bluebird", "Eastern Kingbird", "Eastern Meadowlark", "Eastern Phoebe",
    "Eastern Screech Owl", "Eastern Towhee", "Eastern Wood Pewee", "Elegant Trogon", "Elf Owl",
    "Eurasian Collared Dove", "Eurasian Wigeon", "European Starling", "Evening Grosbeak", "Ferruginous Hawk",
    "Ferruginous Pygmy Owl", "Field Sparrow", "Fish Crow", "Florida Scrub Jay", "Forsters Tern", "Fox Sparrow",
    "Franklins Gull", "Fulvous Whistling Duck", "Gadwall", "Gambels Quail", "Gila Woodpecker", "Glaucous Gull",
    "Glaucous winged Gull", "Glossy Ibis", "Golden Eagle", "Golden crowned Kinglet", "Golden crowned Sparrow",
    "Golden fronted Woodpecker", "Golden winged Warbler", "Grasshopper Sparrow", "Gray Catbird", "Gray Flycatcher",
    "Gray Jay", "Gray Kingbird", "Gray cheeked Thrush", "Gray crowned Rosy Finch", "Great Black backed Gull",
    "Great Blue Heron", "Great Cormorant", "Great Crested Flycatcher", "Great Egret", "Great Gray Owl",
    "Great Horned Owl", "Great Kiskadee", "Great tailed Grackle", "Greater Prairie Chicken", "Greater Roadrunner",
    "Greater Sage Grouse", "Greater Scaup", "Greater White fronted Goose", "Greater Yellowlegs", "Green Jay",
    "Green tailed Towhee", "Green winged Teal", "Groove billed Ani", "Gull billed Tern", "Hairy Woodpecker",
    "Hammonds Flycatcher", "Harlequin Duck", "Harriss Hawk", "Harriss Sparrow", "Heermanns Gull", "Henslows Sparrow",
    "Hepatic Tanager", "Hermit Thrush", "Herring Gull", "Hoary Redpoll", "Hooded Merganser", "Hooded Oriole",
    "Hooded Warbler", "Horned Grebe", "Horned Lark", "House Finch", "House Sparrow", "House Wren", "Huttons Vireo",
    "Iceland Gull", "Inca Dove", "Indigo Bunting", "Killdeer", "King Rail", "Ladder backed Woodpecker",
    "Lapland Longspur", "Lark Bunting", "Lark Sparrow", "Laughing Gull", "Lazuli Bunting", "Le Contes Sparrow",
    "Least Bittern", "Least Flycatcher", "Least Grebe", "Least Sandpiper", "Least Tern", "Lesser Goldfinch",
    "Lesser Nighthawk", "Lesser Scaup", "Lesser Yellowlegs", "Lewiss Woodpecker", "Limpkin", "Lincolns Sparrow",
    "Little Blue Heron", "Loggerhead Shrike", "Long billed Curlew", "Long billed Dowitcher", "Long billed Thrasher",
    "Long eared Owl", "Long tailed Duck", "Louisiana Waterthrush", "Magnificent Frigatebird", "Magnolia Warbler",
    "Mallard", "Marbled Godwit", "Marsh Wren", "Merlin", "Mew Gull", "Mexican Jay", "Mississippi Kite", "Monk Parakeet",
    "Mottled Duck", "Mountain Bluebird", "Mountain Chickadee", "Mountain Plover", "Mourning Dove", "Mourning Warbler",
    "Muscovy Duck", "Mute Swan", "Nashville Warbler", "Nelsons Sparrow", "Neotropic Cormorant", "Northern Bobwhite",
    "Northern Cardinal", "Northern Flicker", "Northern Gannet", "Northern Goshawk", "Northern Harrier",
    "Northern Hawk Owl", "Northern Mockingbird", "Northern Parula", "Northern Pintail", "Northern Rough winged Swallow",
    "Northern Saw whet Owl", "Northern Shrike", "Northern Waterthrush", "Nuttalls Woodpecker", "Oak Titmouse",
    "Olive Sparrow", "Olive sided Flycatcher", "Orange crowned Warbler", "Orchard Oriole", "Osprey", "Ovenbird",
    "Pacific Golden Plover", "Pacific Loon", "Pacific Wren", "Pacific slope Flycatcher", "Painted Bunting",
    "Painted Redstart", "Palm Warbler", "Pectoral Sandpiper", "Peregrine Falcon", "Phainopepla", "Philadelphia Vireo",
    "Pied billed Grebe", "Pigeon Guillemot", "Pileated Woodpecker", "Pine Grosbeak", "Pine Siskin", "Pine Warbler",
    "Piping Plover", "Plumbeous Vireo", "Prairie Falcon", "Prairie Warbler", "Prothonotary Warbler", "Purple Finch",
    "Purple Gallinule", "Purple Martin", "Purple Sandpiper", "Pygmy Nuthatch", "Pyrrhuloxia", "Red Crossbill",
    "Red Knot", "Red Phalarope", "Red bellied Woodpecker", "Red breasted Merganser", "Red breasted Nuthatch",
    "Red breasted Sapsucker", "Red cockaded Woodpecker", "Red eyed Vireo", "Red headed Woodpecker",
    "Red naped Sapsucker", "Red necked Grebe", "Red necked Phalarope", "Red shouldered Hawk", "Red tailed Hawk",
    "Red throated Loon", "Red winged Blackbird", "Reddish Egret", "Redhead", "Ring billed Gull", "Ring necked Duck",
    "Ring necked Pheasant", "Rock Pigeon", "Rock Ptarmigan", "Rock Sandpiper", "Rock Wren", "Rose breasted Grosbeak",
    "Roseate Tern", "Rosss Goose", "Rough legged Hawk", "Royal Tern", "Ruby crowned Kinglet",
    "Ruby throated Hummingbird", "Ruddy Duck", "Ruddy Turnstone", "Ruffed Grouse", "Rufous Hummingbird",
    "Rufous crowned Sparrow", "Rusty Blackbird", "Sage Thrasher", "Saltmarsh Sparrow", "Sanderling", "Sandhill Crane",
    "Sandwich Tern", "Says Phoebe", "Scaled Quail", "Scarlet Tanager", "Scissor tailed Flycatcher", "Scotts Oriole",
    "Seaside Sparrow", "Sedge Wren", "Semipalmated Plover", "Semipalmated Sandpiper", "Sharp shinned Hawk",
    "Sharp tailed Grouse", "Short billed Dowitcher", "Short eared Owl", "Snail Kite", "Snow Bunting", "Snow Goose",
    "Snowy Egret", "Snowy Owl", "Snowy Plover", "Solitary Sandpiper", "Song Sparrow", "Sooty Grouse", "Sora",
    "Spotted Owl", "Spotted Sandpiper", "Spotted Towhee", "Spruce Grouse", "Stellers Jay", "Stilt Sandpiper",
    "Summer Tanager", "Surf Scoter", "Surfbird", "Swainsons Hawk", "Swainsons Thrush", "Swallow tailed Kite",
    "Swamp Sparrow", "Tennessee Warbler", "Thayers Gull", "Townsends Solitaire", "Townsends Warbler", "Tree Swallow",
    "Tricolored Heron", "Tropical Kingbird", "Trumpeter Swan", "Tufted Titmouse", "Tundra Swan", "Turkey Vulture",
    "Upland Sandpiper", "Varied Thrush", "Veery", "Verdin", "Vermilion Flycatcher", "Vesper Sparrow",
    "Violet green Swallow", "Virginia Rail", "Wandering Tattler", "Warbling Vireo", "Western Bluebird", "Western Grebe",
    "Western Gull", "Western Kingbird", "Western Meadowlark", "Western Sandpiper", "Western Screech Owl",
    "Western Scrub Jay", "Western Tanager", "Western Wood Pewee", "Whimbrel", "White Ibis", "White breasted Nuthatch",
    "White crowned Sparrow", "White eyed Vireo", "White faced Ibis", "White headed Woodpecker",
    "White rumped Sandpiper", "White tailed Hawk", "White tailed Kite", "White tailed Ptarmigan",
    "White throated Sparrow", "White throated Swift", "White winged Crossbill", "White winged Dove",
    "White winged Scoter", "Wild Turkey", "Willet", "Williamsons Sapsucker", "Willow Flycatcher", "Willow Ptarmigan",
    "Wilsons Phalarope", "Wilsons Plover", "Wilsons Snipe", "Wilsons Warbler", "Winter Wren", "Wood Stork",
    "Wood Thrush", "Worm eating Warbler", "Wrentit", "Yellow Warbler", "Yellow bellied Flycatcher",
    "Yellow bellied Sapsucker", "Yellow billed Cuckoo", "Yellow billed Magpie", "Yellow breasted Chat",
    "Yellow crowned Night Heron", "Yellow eyed Junco", "Yellow headed Blackbird", "Yellow rumped Warbler",
    "Yellow throated Vireo", "Yellow throated Warbler", "Zone tailed Hawk",
)

# Caltech101: CLIP's list without its first entry "background": torchvision's Caltech101 drops BACKGROUND_Google, so
# label 0 is Faces ("off-center face") and 1 is Faces_easy ("centered face"): the CLIP variant. ReCLIP's file calls
# those two "human face" and "ID photo" (the released variant); the other 99 agree. The crocodile_head entry keeps
# CLIP's two spaces after "of a" (CLIP's tokenizer collapses whitespace).
_CALTECH101 = (
    "off-center face", "centered face", "leopard", "motorbike", "accordion", "airplane", "anchor", "ant", "barrel",
    "bass", "beaver", "binocular", "bonsai", "brain", "brontosaurus", "buddha", "butterfly", "camera", "cannon",
    "side of a car", "ceiling fan", "cellphone", "chair", "chandelier", "body of a cougar cat", "face of a cougar cat",
    "crab", "crayfish", "crocodile", "head of a  crocodile", "cup", "dalmatian", "dollar bill", "dolphin", "dragonfly",
    "electric guitar", "elephant", "emu", "euphonium", "ewer", "ferry", "flamingo", "head of a flamingo", "garfield",
    "gerenuk", "gramophone", "grand piano", "hawksbill", "headphone", "hedgehog", "helicopter", "ibis", "inline skate",
    "joshua tree", "kangaroo", "ketch", "lamp", "laptop", "llama", "lobster", "lotus", "mandolin", "mayfly", "menorah",
    "metronome", "minaret", "nautilus", "octopus", "okapi", "pagoda", "panda", "pigeon", "pizza", "platypus", "pyramid",
    "revolver", "rhino", "rooster", "saxophone", "schooner", "scissors", "scorpion", "sea horse",
    "snoopy (cartoon beagle)", "soccer ball", "stapler", "starfish", "stegosaurus", "stop sign", "strawberry",
    "sunflower", "tick", "trilobite", "umbrella", "watch", "water lilly", "wheelchair", "wild cat", "windsor chair",
    "wrench", "yin and yang symbol",
)

_CALTECH101_TEMPLATES = (
    "a photo of a {}.", "a painting of a {}.", "a plastic {}.", "a sculpture of a {}.", "a sketch of a {}.",
    "a tattoo of a {}.", "a toy {}.", "a rendition of a {}.", "a embroidered {}.", "a cartoon {}.",
    "a {} in a video game.", "a plushie {}.", "a origami {}.", "art of a {}.", "graffiti of a {}.",
    "a drawing of a {}.", "a doodle of a {}.", "a photo of the {}.", "a painting of the {}.", "the plastic {}.",
    "a sculpture of the {}.", "a sketch of the {}.", "a tattoo of the {}.", "the toy {}.", "a rendition of the {}.",
    "the embroidered {}.", "the cartoon {}.", "the {} in a video game.", "the plushie {}.", "the origami {}.",
    "art of the {}.", "graffiti of the {}.", "a drawing of the {}.", "a doodle of the {}.",
)

# CIFAR-10 / CIFAR-100: CLIP's lists and 18 templates (identical in ReCLIP's file).
_CIFAR10 = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)

_CIFAR_TEMPLATES = (
    "a photo of a {}.", "a blurry photo of a {}.", "a black and white photo of a {}.", "a low contrast photo of a {}.",
    "a high contrast photo of a {}.", "a bad photo of a {}.", "a good photo of a {}.", "a photo of a small {}.",
    "a photo of a big {}.", "a photo of the {}.", "a blurry photo of the {}.", "a black and white photo of the {}.",
    "a low contrast photo of the {}.", "a high contrast photo of the {}.", "a bad photo of the {}.",
    "a good photo of the {}.", "a photo of the small {}.", "a photo of the big {}.",
)

_CIFAR100 = (
    "apple", "aquarium fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle", "bowl", "boy",
    "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle", "chair", "chimpanzee", "clock",
    "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest",
    "fox", "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn mower", "leopard", "lion", "lizard",
    "lobster", "man", "maple tree", "motorcycle", "mountain", "mouse", "mushroom", "oak tree", "orange", "orchid",
    "otter", "palm tree", "pear", "pickup truck", "pine tree", "plain", "plate", "poppy", "porcupine", "possum",
    "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper",
    "snail", "snake", "spider", "squirrel", "streetcar", "sunflower", "sweet pepper", "table", "tank", "telephone",
    "television", "tiger", "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow tree", "wolf",
    "woman", "worm",
)

# Country211: CLIP's list (identical in ReCLIP's file), in ISO 3166 code order (torchvision's folders).
_COUNTRY211 = (
    "Andorra", "United Arab Emirates", "Afghanistan", "Antigua and Barbuda", "Anguilla", "Albania", "Armenia", "Angola",
    "Antarctica", "Argentina", "Austria", "Australia", "Aruba", "Aland Islands", "Azerbaijan", "Bosnia and Herzegovina",
    "Barbados", "Bangladesh", "Belgium", "Burkina Faso", "Bulgaria", "Bahrain", "Benin", "Bermuda", "Brunei Darussalam",
    "Bolivia", "Bonaire, Saint Eustatius and Saba", "Brazil", "Bahamas", "Bhutan", "Botswana", "Belarus", "Belize",
    "Canada", "DR Congo", "Central African Republic", "Switzerland", "Cote d'Ivoire", "Cook Islands", "Chile",
    "Cameroon", "China", "Colombia", "Costa Rica", "Cuba", "Cabo Verde", "Curacao", "Cyprus", "Czech Republic",
    "Germany", "Denmark", "Dominica", "Dominican Republic", "Algeria", "Ecuador", "Estonia", "Egypt", "Spain",
    "Ethiopia", "Finland", "Fiji", "Falkland Islands", "Faeroe Islands", "France", "Gabon", "United Kingdom", "Grenada",
    "Georgia", "French Guiana", "Guernsey", "Ghana", "Gibraltar", "Greenland", "Gambia", "Guadeloupe", "Greece",
    "South Georgia and South Sandwich Is.", "Guatemala", "Guam", "Guyana", "Hong Kong", "Honduras", "Croatia", "Haiti",
    "Hungary", "Indonesia", "Ireland", "Israel", "Isle of Man", "India", "Iraq", "Iran", "Iceland", "Italy", "Jersey",
    "Jamaica", "Jordan", "Japan", "Kenya", "Kyrgyz Republic", "Cambodia", "St. Kitts and Nevis", "North Korea",
    "South Korea", "Kuwait", "Cayman Islands", "Kazakhstan", "Laos", "Lebanon", "St. Lucia", "Liechtenstein",
    "Sri Lanka", "Liberia", "Lithuania", "Luxembourg", "Latvia", "Libya", "Morocco", "Monaco", "Moldova", "Montenegro",
    "Saint-Martin", "Madagascar", "Macedonia", "Mali", "Myanmar", "Mongolia", "Macau", "Martinique", "Mauritania",
    "Malta", "Mauritius", "Maldives", "Malawi", "Mexico", "Malaysia", "Mozambique", "Namibia", "New Caledonia",
    "Nigeria", "Nicaragua", "Netherlands", "Norway", "Nepal", "New Zealand", "Oman", "Panama", "Peru",
    "French Polynesia", "Papua New Guinea", "Philippines", "Pakistan", "Poland", "Puerto Rico", "Palestine", "Portugal",
    "Palau", "Paraguay", "Qatar", "Reunion", "Romania", "Serbia", "Russia", "Rwanda", "Saudi Arabia", "Solomon Islands",
    "Seychelles", "Sudan", "Sweden", "Singapore", "St. Helena", "Slovenia", "Svalbard and Jan Mayen Islands",
    "Slovakia", "Sierra Leone", "San Marino", "Senegal", "Somalia", "South Sudan", "El Salvador", "Sint Maarten",
    "Syria", "Eswatini", "Togo", "Thailand", "Tajikistan", "Timor-Leste", "Turkmenistan", "Tunisia", "Tonga", "Turkey",
    "Trinidad and Tobago", "Taiwan", "Tanzania", "Ukraine", "Uganda", "United States", "Uruguay", "Uzbekistan",
    "Vatican", "Venezuela", "British Virgin Islands", "United States Virgin Islands", "Vietnam", "Vanuatu", "Samoa",
    "Kosovo", "Yemen", "South Africa", "Zambia", "Zimbabwe",
)

# DTD: CLIP's list (identical in ReCLIP's file), alphabetical.
_DTD = (
    "banded", "blotchy", "braided", "bubbly", "bumpy", "chequered", "cobwebbed", "cracked", "crosshatched",
    "crystalline", "dotted", "fibrous", "flecked", "freckled", "frilly", "gauzy", "grid", "grooved", "honeycombed",
    "interlaced", "knitted", "lacelike", "lined", "marbled", "matted", "meshed", "paisley", "perforated", "pitted",
    "pleated", "polka-dotted", "porous", "potholed", "scaly", "smeared", "spiralled", "sprinkled", "stained",
    "stratified", "striped", "studded", "swirly", "veined", "waffled", "woven", "wrinkled", "zigzagged",
)

# EuroSAT: CLIP's names, in torchvision's label order (sorted folders AnnualCrop, Forest, HerbaceousVegetation, Highway,
# Industrial, Pasture, PermanentCrop, Residential, River, SeaLake), which is also ReCLIP's order. CLIP's file lists the
# same 10 names in another order (forest, permanent crop land, residential ..., river, ...).
_EUROSAT = (
    "annual crop land", "forest", "brushland or shrubland", "highway or road",
    "industrial buildings or commercial buildings", "pasture land", "permanent crop land",
    "residential buildings or homes or apartments", "river", "lake or sea",
)

# FER2013: CLIP (and ReCLIP's file) give some classes several synonyms, all ensembled: happy/smiling, sad/depressed,
# surprised/shocked/spooked, neutral/bored. classnames are the first synonyms. (ReCLIP-T's single-template prompt is
# formatted with the Python list itself, "a photo of a ['happy', 'smiling'] looking face."; ReCLIPConfig.synonym_prompt
# chooses between that and the first synonym.) Label order 0-6: angry, disgust, fear, happy, sad, surprise, neutral.
_FER2013_SYNONYMS = (
    ("angry",), ("disgusted",), ("fearful",), ("happy", "smiling"), ("sad", "depressed"),
    ("surprised", "shocked", "spooked"), ("neutral", "bored"),
)
_FER2013 = tuple(names[0] for names in _FER2013_SYNONYMS)

# FGVC-Aircraft (100 variants): CLIP's list (identical in ReCLIP's file).
_FGVC = (
    "707-320", "727-200", "737-200", "737-300", "737-400", "737-500", "737-600", "737-700", "737-800", "737-900",
    "747-100", "747-200", "747-300", "747-400", "757-200", "757-300", "767-200", "767-300", "767-400", "777-200",
    "777-300", "A300B4", "A310", "A318", "A319", "A320", "A321", "A330-200", "A330-300", "A340-200", "A340-300",
    "A340-500", "A340-600", "A380", "ATR-42", "ATR-72", "An-12", "BAE 146-200", "BAE 146-300", "BAE-125",
    "Beechcraft 1900", "Boeing 717", "C-130", "C-47", "CRJ-200", "CRJ-700", "CRJ-900", "Cessna 172", "Cessna 208",
    "Cessna 525", "Cessna 560", "Challenger 600", "DC-10", "DC-3", "DC-6", "DC-8", "DC-9-30", "DH-82", "DHC-1", "DHC-6",
    "DHC-8-100", "DHC-8-300", "DR-400", "Dornier 328", "E-170", "E-190", "E-195", "EMB-120", "ERJ 135", "ERJ 145",
    "Embraer Legacy 600", "Eurofighter Typhoon", "F-16A/B", "F/A-18", "Falcon 2000", "Falcon 900", "Fokker 100",
    "Fokker 50", "Fokker 70", "Global Express", "Gulfstream IV", "Gulfstream V", "Hawk T1", "Il-76", "L-1011", "MD-11",
    "MD-80", "MD-87", "MD-90", "Metroliner", "Model B200", "PA-28", "SR-20", "Saab 2000", "Saab 340", "Spitfire",
    "Tornado", "Tu-134", "Tu-154", "Yak-42",
)

# Flowers102: CLIP's list (identical in ReCLIP's file), in the dataset's label order.
_FLOWERS102 = (
    "pink primrose", "hard-leaved pocket orchid", "canterbury bells", "sweet pea", "english marigold", "tiger lily",
    "moon orchid", "bird of paradise", "monkshood", "globe thistle", "snapdragon", "colt's foot", "king protea",
    "spear thistle", "yellow iris", "globe flower", "purple coneflower", "peruvian lily", "balloon flower",
    "giant white arum lily", "fire lily", "pincushion flower", "fritillary", "red ginger", "grape hyacinth",
    "corn poppy", "prince of wales feathers", "stemless gentian", "artichoke", "sweet william", "carnation",
    "garden phlox", "love in the mist", "mexican aster", "alpine sea holly", "ruby-lipped cattleya", "cape flower",
    "great masterwort", "siam tulip", "lenten rose", "barbeton daisy", "daffodil", "sword lily", "poinsettia",
    "bolero deep blue", "wallflower", "marigold", "buttercup", "oxeye daisy", "common dandelion", "petunia",
    "wild pansy", "primula", "sunflower", "pelargonium", "bishop of llandaff", "gaura", "geranium", "orange dahlia",
    "pink and yellow dahlia", "cautleya spicata", "japanese anemone", "black-eyed susan", "silverbush",
    "californian poppy", "osteospermum", "spring crocus", "bearded iris", "windflower", "tree poppy", "gazania",
    "azalea", "water lily", "rose", "thorn apple", "morning glory", "passion flower", "lotus", "toad lily", "anthurium",
    "frangipani", "clematis", "hibiscus", "columbine", "desert-rose", "tree mallow", "magnolia", "cyclamen",
    "watercress", "canna lily", "hippeastrum", "bee balm", "air plant", "foxglove", "bougainvillea", "camellia",
    "mallow", "mexican petunia", "bromelia", "blanket flower", "trumpet creeper", "blackberry lily",
)

# Food-101: CLIP's list (identical in ReCLIP's file), alphabetical.
_FOOD101 = (
    "apple pie", "baby back ribs", "baklava", "beef carpaccio", "beef tartare", "beet salad", "beignets", "bibimbap",
    "bread pudding", "breakfast burrito", "bruschetta", "caesar salad", "cannoli", "caprese salad", "carrot cake",
    "ceviche", "cheese plate", "cheesecake", "chicken curry", "chicken quesadilla", "chicken wings", "chocolate cake",
    "chocolate mousse", "churros", "clam chowder", "club sandwich", "crab cakes", "creme brulee", "croque madame",
    "cup cakes", "deviled eggs", "donuts", "dumplings", "edamame", "eggs benedict", "escargots", "falafel",
    "filet mignon", "fish and chips", "foie gras", "french fries", "french onion soup", "french toast",
    "fried calamari", "fried rice", "frozen yogurt", "garlic bread", "gnocchi", "greek salad",
    "grilled cheese sandwich", "grilled salmon", "guacamole", "gyoza", "hamburger", "hot and sour soup", "hot dog",
    "huevos rancheros", "hummus", "ice cream", "lasagna", "lobster bisque", "lobster roll sandwich",
    "macaroni and cheese", "macarons", "miso soup", "mussels", "nachos", "omelette", "onion rings", "oysters",
    "pad thai", "paella", "pancakes", "panna cotta", "peking duck", "pho", "pizza", "pork chop", "poutine", "prime rib",
    "pulled pork sandwich", "ramen", "ravioli", "red velvet cake", "risotto", "samosa", "sashimi", "scallops",
    "seaweed salad", "shrimp and grits", "spaghetti bolognese", "spaghetti carbonara", "spring rolls", "steak",
    "strawberry shortcake", "sushi", "tacos", "takoyaki", "tiramisu", "tuna tartare", "waffles",
)

# GTSRB: CLIP's list (identical in ReCLIP's file), labels 0-42; CLIP's spellings ("horizonal", "bicyle") kept verbatim.
_GTSRB = (
    "red and white circle 20 kph speed limit", "red and white circle 30 kph speed limit",
    "red and white circle 50 kph speed limit", "red and white circle 60 kph speed limit",
    "red and white circle 70 kph speed limit", "red and white circle 80 kph speed limit",
    "end / de-restriction of 80 kph speed limit", "red and white circle 100 kph speed limit",
    "red and white circle 120 kph speed limit", "red and white circle red car and black car no passing",
    "red and white circle red truck and black car no passing", "red and white triangle road intersection warning",
    "white and yellow diamond priority road", "red and white upside down triangle yield right-of-way", "stop",
    "empty red and white circle", "red and white circle no truck entry",
    "red circle with white horizonal stripe no entry", "red and white triangle with exclamation mark warning",
    "red and white triangle with black left curve approaching warning",
    "red and white triangle with black right curve approaching warning",
    "red and white triangle with black double curve approaching warning",
    "red and white triangle rough / bumpy road warning", "red and white triangle car skidding / slipping warning",
    "red and white triangle with merging / narrow lanes warning",
    "red and white triangle with person digging / construction / road work warning",
    "red and white triangle with traffic light approaching warning",
    "red and white triangle with person walking warning",
    "red and white triangle with child and person walking warning", "red and white triangle with bicyle warning",
    "red and white triangle with snowflake / ice warning", "red and white triangle with deer warning",
    "white circle with gray strike bar no speed limit", "blue circle with white right turn arrow mandatory",
    "blue circle with white left turn arrow mandatory", "blue circle with white forward arrow mandatory",
    "blue circle with white forward or right turn arrow mandatory",
    "blue circle with white forward or left turn arrow mandatory", "blue circle with white keep right arrow mandatory",
    "blue circle with white keep left arrow mandatory", "blue circle with white arrows indicating a traffic circle",
    "white circle with gray strike bar indicating no passing for cars has ended",
    "white circle with gray strike bar indicating no passing for trucks has ended",
)

# ImageNet: the 1000 class names of CLIP's notebooks/Prompt_Engineering_for_ImageNet.ipynb (identical in ReCLIP's file).
# They are not all distinct: "missile" appears twice (classes 657 missile and 744 projectile) and "sunglasses" twice
# (836 sunglass and 837 sunglasses), verbatim from CLIP.
_IMAGENET = (
    "tench", "goldfish", "great white shark", "tiger shark", "hammerhead shark", "electric ray", "stingray", "rooster",
    "hen", "ostrich", "brambling", "goldfinch", "house finch", "junco", "indigo bunting", "American robin", "bulbul",
    "jay", "magpie", "chickadee", "American dipper", "kite (bird of prey)", "bald eagle", "vulture", "great grey owl",
    "fire salamander", "smooth newt", "newt", "spotted salamander", "axolotl", "American bullfrog", "tree frog",
    "tailed frog", "loggerhead sea turtle", "leatherback sea turtle", "mud turtle", "terrapin", "box turtle",
    "banded gecko", "green iguana", "Carolina anole", "desert grassland whiptail lizard", "agama",
    "frilled-necked lizard", "alligator lizard", "Gila monster", "European green lizard", "chameleon", "Komodo dragon",
    "Nile crocodile", "American alligator", "triceratops", "worm snake", "ring-necked snake", "eastern hog-nosed snake",
    "smooth green snake", "kingsnake", "garter snake", "water snake", "vine snake", "night snake", "boa constrictor",
    "African rock python", "Indian cobra", "green mamba", "sea snake", "Saharan horned viper",
    "eastern diamondback rattlesnake", "sidewinder rattlesnake", "trilobite", "harvestman", "scorpion",
    "yellow garden spider", "barn spider", "European garden spider", "southern black widow", "tarantula", "wolf spider",
    "tick", "centipede", "black grouse", "ptarmigan", "ruffed grouse", "prairie grouse", "peafowl", "quail",
    "partridge", "african grey parrot", "macaw", "sulphur-crested cockatoo", "lorikeet", "coucal", "bee eater",
    "hornbill", "hummingbird", "jacamar", "toucan", "duck", "red-breasted merganser", "goose", "black swan", "tusker",
    "echidna", "platypus", "wallaby", "koala", "wombat", "jellyfish", "sea anemone", "brain coral", "flatworm",
    "nematode", "conch", "snail", "slug", "sea slug", "chiton", "chambered nautilus", "Dungeness crab", "rock crab",
    "fiddler crab", "red king crab", "American lobster", "spiny lobster", "crayfish", "hermit crab", "isopod",
    "white stork", "black stork", "spoonbill", "flamingo", "little blue heron", "great egret", "bittern bird",
    "crane bird", "limpkin", "common gallinule", "American coot", "bustard", "ruddy turnstone", "dunlin",
    "common redshank", "dowitcher", "oystercatcher", "pelican", "king penguin", "albatross", "grey whale",
    "killer whale", "dugong", "sea lion", "Chihuahua", "Japanese Chin", "Maltese", "Pekingese", "Shih Tzu",
    "King Charles Spaniel", "Papillon", "toy terrier", "Rhodesian Ridgeback", "Afghan Hound", "Basset Hound", "Beagle",
    "Bloodhound", "Bluetick Coonhound", "Black and Tan Coonhound", "Treeing Walker Coonhound", "English foxhound",
    "Redbone Coonhound", "borzoi", "Irish Wolfhound", "Italian Greyhound", "Whippet", "Ibizan Hound",
    "Norwegian Elkhound", "Otterhound", "Saluki", "Scottish Deerhound", "Weimaraner", "Staffordshire Bull Terrier",
    "American Staffordshire Terrier", "Bedlington Terrier", "Border Terrier", "Kerry Blue Terrier", "Irish Terrier",
    "Norfolk Terrier", "Norwich Terrier", "Yorkshire Terrier", "Wire Fox Terrier", "Lakeland Terrier",
    "Sealyham Terrier", "Airedale Terrier", "Cairn Terrier", "Australian Terrier", "Dandie Dinmont Terrier",
    "Boston Terrier", "Miniature Schnauzer", "Giant Schnauzer", "Standard Schnauzer", "Scottish Terrier",
    "Tibetan Terrier", "Australian Silky Terrier", "Soft-coated Wheaten Terrier", "West Highland White Terrier",
    "Lhasa Apso", "Flat-Coated Retriever", "Curly-coated Retriever", "Golden Retriever", "Labrador Retriever",
    "Chesapeake Bay Retriever", "German Shorthaired Pointer", "Vizsla", "English Setter", "Irish Setter",
    "Gordon Setter", "Brittany dog", "Clumber Spaniel", "English Springer Spaniel", "Welsh Springer Spaniel",
    "Cocker Spaniel", "Sussex Spaniel", "Irish Water Spaniel", "Kuvasz", "Schipperke", "Groenendael dog", "Malinois",
    "Briard", "Australian Kelpie", "Komondor", "Old English Sheepdog", "Shetland Sheepdog", "collie", "Border Collie",
    "Bouvier des Flandres dog", "Rottweiler", "German Shepherd Dog", "Dobermann", "Miniature Pinscher",
    "Greater Swiss Mountain Dog", "Bernese Mountain Dog", "Appenzeller Sennenhund", "Entlebucher Sennenhund", "Boxer",
    "Bullmastiff", "Tibetan Mastiff", "French Bulldog", "Great Dane", "St. Bernard", "husky", "Alaskan Malamute",
    "Siberian Husky", "Dalmatian", "Affenpinscher", "Basenji", "pug", "Leonberger", "Newfoundland dog",
    "Great Pyrenees dog", "Samoyed", "Pomeranian", "Chow Chow", "Keeshond", "brussels griffon", "Pembroke Welsh Corgi",
    "Cardigan Welsh Corgi", "Toy Poodle", "Miniature Poodle", "Standard Poodle",
    "Mexican hairless dog (xoloitzcuintli)", "grey wolf", "Alaskan tundra wolf", "red wolf or maned wolf", "coyote",
    "dingo", "dhole", "African wild dog", "hyena", "red fox", "kit fox", "Arctic fox", "grey fox", "tabby cat",
    "tiger cat", "Persian cat", "Siamese cat", "Egyptian Mau", "cougar", "lynx", "leopard", "snow leopard", "jaguar",
    "lion", "tiger", "cheetah", "brown bear", "American black bear", "polar bear", "sloth bear", "mongoose", "meerkat",
    "tiger beetle", "ladybug", "ground beetle", "longhorn beetle", "leaf beetle", "dung beetle", "rhinoceros beetle",
    "weevil", "fly", "bee", "ant", "grasshopper", "cricket insect", "stick insect", "cockroach", "praying mantis",
    "cicada", "leafhopper", "lacewing", "dragonfly", "damselfly", "red admiral butterfly", "ringlet butterfly",
    "monarch butterfly", "small white butterfly", "sulphur butterfly", "gossamer-winged butterfly", "starfish",
    "sea urchin", "sea cucumber", "cottontail rabbit", "hare", "Angora rabbit", "hamster", "porcupine", "fox squirrel",
    "marmot", "beaver", "guinea pig", "common sorrel horse", "zebra", "pig", "wild boar", "warthog", "hippopotamus",
    "ox", "water buffalo", "bison", "ram (adult male sheep)", "bighorn sheep", "Alpine ibex", "hartebeest",
    "impala (antelope)", "gazelle", "arabian camel", "llama", "weasel", "mink", "European polecat",
    "black-footed ferret", "otter", "skunk", "badger", "armadillo", "three-toed sloth", "orangutan", "gorilla",
    "chimpanzee", "gibbon", "siamang", "guenon", "patas monkey", "baboon", "macaque", "langur",
    "black-and-white colobus", "proboscis monkey", "marmoset", "white-headed capuchin", "howler monkey", "titi monkey",
    "Geoffroy's spider monkey", "common squirrel monkey", "ring-tailed lemur", "indri", "Asian elephant",
    "African bush elephant", "red panda", "giant panda", "snoek fish", "eel", "silver salmon", "rock beauty fish",
    "clownfish", "sturgeon", "gar fish", "lionfish", "pufferfish", "abacus", "abaya", "academic gown", "accordion",
    "acoustic guitar", "aircraft carrier", "airliner", "airship", "altar", "ambulance", "amphibious vehicle",
    "analog clock", "apiary", "apron", "trash can", "assault rifle", "backpack", "bakery", "balance beam", "balloon",
    "ballpoint pen", "Band-Aid", "banjo", "baluster / handrail", "barbell", "barber chair", "barbershop", "barn",
    "barometer", "barrel", "wheelbarrow", "baseball", "basketball", "bassinet", "bassoon", "swimming cap", "bath towel",
    "bathtub", "station wagon", "lighthouse", "beaker", "military hat (bearskin or shako)", "beer bottle", "beer glass",
    "bell tower", "baby bib", "tandem bicycle", "bikini", "ring binder", "binoculars", "birdhouse", "boathouse",
    "bobsleigh", "bolo tie", "poke bonnet", "bookcase", "bookstore", "bottle cap", "hunting bow", "bow tie",
    "brass memorial plaque", "bra", "breakwater", "breastplate", "broom", "bucket", "buckle", "bulletproof vest",
    "high-speed train", "butcher shop", "taxicab", "cauldron", "candle", "cannon", "canoe", "can opener", "cardigan",
    "car mirror", "carousel", "tool kit", "cardboard box / carton", "car wheel", "automated teller machine", "cassette",
    "cassette player", "castle", "catamaran", "CD player", "cello", "mobile phone", "chain", "chain-link fence",
    "chain mail", "chainsaw", "storage chest", "chiffonier", "bell or wind chime", "china cabinet",
    "Christmas stocking", "church", "movie theater", "cleaver", "cliff dwelling", "cloak", "clogs", "cocktail shaker",
    "coffee mug", "coffeemaker", "spiral or coil", "combination lock", "computer keyboard", "candy store",
    "container ship", "convertible", "corkscrew", "cornet", "cowboy boot", "cowboy hat", "cradle", "construction crane",
    "crash helmet", "crate", "infant bed", "Crock Pot", "croquet ball", "crutch", "cuirass", "dam", "desk",
    "desktop computer", "rotary dial telephone", "diaper", "digital clock", "digital watch", "dining table",
    "dishcloth", "dishwasher", "disc brake", "dock", "dog sled", "dome", "doormat", "drilling rig", "drum", "drumstick",
    "dumbbell", "Dutch oven", "electric fan", "electric guitar", "electric locomotive", "entertainment center",
    "envelope", "espresso machine", "face powder", "feather boa", "filing cabinet", "fireboat", "fire truck",
    "fire screen", "flagpole", "flute", "folding chair", "football helmet", "forklift", "fountain", "fountain pen",
    "four-poster bed", "freight car", "French horn", "frying pan", "fur coat", "garbage truck",
    "gas mask or respirator", "gas pump", "goblet", "go-kart", "golf ball", "golf cart", "gondola", "gong", "gown",
    "grand piano", "greenhouse", "radiator grille", "grocery store", "guillotine", "hair clip", "hair spray",
    "half-track", "hammer", "hamper", "hair dryer", "hand-held computer", "handkerchief", "hard disk drive",
    "harmonica", "harp", "combine harvester", "hatchet", "holster", "home theater", "honeycomb", "hook", "hoop skirt",
    "gymnastic horizontal bar", "horse-drawn vehicle", "hourglass", "iPod", "clothes iron", "carved pumpkin", "jeans",
    "jeep", "T-shirt", "jigsaw puzzle", "rickshaw", "joystick", "kimono", "knee pad", "knot", "lab coat", "ladle",
    "lampshade", "laptop computer", "lawn mower", "lens cap", "letter opener", "library", "lifeboat", "lighter",
    "limousine", "ocean liner", "lipstick", "slip-on shoe", "lotion", "music speaker", "loupe magnifying glass",
    "sawmill", "magnetic compass", "messenger bag", "mailbox", "tights", "one-piece bathing suit", "manhole cover",
    "maraca", "marimba", "mask", "matchstick", "maypole", "maze", "measuring cup", "medicine cabinet", "megalith",
    "microphone", "microwave oven", "military uniform", "milk can", "minibus", "miniskirt", "minivan", "missile",
    "mitten", "mixing bowl", "mobile home", "ford model t", "modem", "monastery", "monitor", "moped",
    "mortar and pestle", "graduation cap", "mosque", "mosquito net", "vespa", "mountain bike", "tent", "computer mouse",
    "mousetrap", "moving van", "muzzle", "metal nail", "neck brace", "necklace", "baby pacifier", "notebook computer",
    "obelisk", "oboe", "ocarina", "odometer", "oil filter", "pipe organ", "oscilloscope", "overskirt", "bullock cart",
    "oxygen mask", "product packet / packaging", "paddle", "paddle wheel", "padlock", "paintbrush", "pajamas", "palace",
    "pan flute", "paper towel", "parachute", "parallel bars", "park bench", "parking meter", "railroad car", "patio",
    "payphone", "pedestal", "pencil case", "pencil sharpener", "perfume", "Petri dish", "photocopier", "plectrum",
    "Pickelhaube", "picket fence", "pickup truck", "pier", "piggy bank", "pill bottle", "pillow", "ping-pong ball",
    "pinwheel", "pirate ship", "drink pitcher", "block plane", "planetarium", "plastic bag", "plate rack", "farm plow",
    "plunger", "Polaroid camera", "pole", "police van", "poncho", "pool table", "soda bottle", "plant pot",
    "potter's wheel", "power drill", "prayer rug", "printer", "prison", "missile", "projector", "hockey puck",
    "punching bag", "purse", "quill", "quilt", "race car", "racket", "radiator", "radio", "radio telescope",
    "rain barrel", "recreational vehicle", "fishing casting reel", "reflex camera", "refrigerator", "remote control",
    "restaurant", "revolver", "rifle", "rocking chair", "rotisserie", "eraser", "rugby ball", "ruler measuring stick",
    "sneaker", "safe", "safety pin", "salt shaker", "sandal", "sarong", "saxophone", "scabbard", "weighing scale",
    "school bus", "schooner", "scoreboard", "CRT monitor", "screw", "screwdriver", "seat belt", "sewing machine",
    "shield", "shoe store", "shoji screen / room divider", "shopping basket", "shopping cart", "shovel", "shower cap",
    "shower curtain", "ski", "balaclava ski mask", "sleeping bag", "slide rule", "sliding door", "slot machine",
    "snorkel", "snowmobile", "snowplow", "soap dispenser", "soccer ball", "sock", "solar thermal collector", "sombrero",
    "soup bowl", "keyboard space bar", "space heater", "space shuttle", "spatula", "motorboat", "spider web", "spindle",
    "sports car", "spotlight", "stage", "steam locomotive", "through arch bridge", "steel drum", "stethoscope", "scarf",
    "stone wall", "stopwatch", "stove", "strainer", "tram", "stretcher", "couch", "stupa", "submarine", "suit",
    "sundial", "sunglasses", "sunglasses", "sunscreen", "suspension bridge", "mop", "sweatshirt",
    "swim trunks / shorts", "swing", "electrical switch", "syringe", "table lamp", "tank", "tape player", "teapot",
    "teddy bear", "television", "tennis ball", "thatched roof", "front curtain", "thimble", "threshing machine",
    "throne", "tile roof", "toaster", "tobacco shop", "toilet seat", "torch", "totem pole", "tow truck", "toy store",
    "tractor", "semi-trailer truck", "tray", "trench coat", "tricycle", "trimaran", "tripod", "triumphal arch",
    "trolleybus", "trombone", "hot tub", "turnstile", "typewriter keyboard", "umbrella", "unicycle", "upright piano",
    "vacuum cleaner", "vase", "vaulted or arched ceiling", "velvet fabric", "vending machine", "vestment", "viaduct",
    "violin", "volleyball", "waffle iron", "wall clock", "wallet", "wardrobe", "military aircraft", "sink",
    "washing machine", "water bottle", "water jug", "water tower", "whiskey jug", "whistle", "hair wig",
    "window screen", "window shade", "Windsor tie", "wine bottle", "airplane wing", "wok", "wooden spoon", "wool",
    "split-rail fence", "shipwreck", "sailboat", "yurt", "website", "comic book", "crossword", "traffic or street sign",
    "traffic light", "dust jacket", "menu", "plate", "guacamole", "consomme", "hot pot", "trifle", "ice cream",
    "popsicle", "baguette", "bagel", "pretzel", "cheeseburger", "hot dog", "mashed potatoes", "cabbage", "broccoli",
    "cauliflower", "zucchini", "spaghetti squash", "acorn squash", "butternut squash", "cucumber", "artichoke",
    "bell pepper", "cardoon", "mushroom", "Granny Smith apple", "strawberry", "orange", "lemon", "fig", "pineapple",
    "banana", "jackfruit", "cherimoya (custard apple)", "pomegranate", "hay", "carbonara", "chocolate syrup", "dough",
    "meatloaf", "pizza", "pot pie", "burrito", "red wine", "espresso", "tea cup", "eggnog", "mountain", "bubble",
    "cliff", "coral reef", "geyser", "lakeshore", "promontory", "sandbar", "beach", "valley", "volcano",
    "baseball player", "bridegroom", "scuba diver", "rapeseed", "daisy", "yellow lady's slipper", "corn", "acorn",
    "rose hip", "horse chestnut seed", "coral fungus", "agaric", "gyromitra", "stinkhorn mushroom", "earth star fungus",
    "hen of the woods mushroom", "bolete", "corn cob", "toilet paper",
)

# CLIP's 80-template ImageNet ensemble (same notebook), in CLIP's order. ReCLIP's file prepends a second
# "a photo of a {}." (81 templates; templates[0] is ReCLIP-T's single template): the released variant. The CLIP
# variant moves "a photo of a {}." from index 39 to the front instead, for the same single template; an ensemble's
# mean does not depend on the order, but the released one counts "a photo of a {}." twice.
_IMAGENET_CLIP_TEMPLATES = (
    "a bad photo of a {}.", "a photo of many {}.", "a sculpture of a {}.", "a photo of the hard to see {}.",
    "a low resolution photo of the {}.", "a rendering of a {}.", "graffiti of a {}.", "a bad photo of the {}.",
    "a cropped photo of the {}.", "a tattoo of a {}.", "the embroidered {}.", "a photo of a hard to see {}.",
    "a bright photo of a {}.", "a photo of a clean {}.", "a photo of a dirty {}.", "a dark photo of the {}.",
    "a drawing of a {}.", "a photo of my {}.", "the plastic {}.", "a photo of the cool {}.",
    "a close-up photo of a {}.", "a black and white photo of the {}.", "a painting of the {}.", "a painting of a {}.",
    "a pixelated photo of the {}.", "a sculpture of the {}.", "a bright photo of the {}.", "a cropped photo of a {}.",
    "a plastic {}.", "a photo of the dirty {}.", "a jpeg corrupted photo of a {}.", "a blurry photo of the {}.",
    "a photo of the {}.", "a good photo of the {}.", "a rendering of the {}.", "a {} in a video game.",
    "a photo of one {}.", "a doodle of a {}.", "a close-up photo of the {}.", "a photo of a {}.", "the origami {}.",
    "the {} in a video game.", "a sketch of a {}.", "a doodle of the {}.", "a origami {}.",
    "a low resolution photo of a {}.", "the toy {}.", "a rendition of the {}.", "a photo of the clean {}.",
    "a photo of a large {}.", "a rendition of a {}.", "a photo of a nice {}.", "a photo of a weird {}.",
    "a blurry photo of a {}.", "a cartoon {}.", "art of a {}.", "a sketch of the {}.", "a embroidered {}.",
    "a pixelated photo of a {}.", "itap of the {}.", "a jpeg corrupted photo of the {}.", "a good photo of a {}.",
    "a plushie {}.", "a photo of the nice {}.", "a photo of the small {}.", "a photo of the weird {}.",
    "the cartoon {}.", "art of the {}.", "a drawing of the {}.", "a photo of the large {}.",
    "a black and white photo of a {}.", "the plushie {}.", "a dark photo of a {}.", "itap of a {}.",
    "graffiti of the {}.", "a toy {}.", "itap of my {}.", "a photo of a cool {}.", "a photo of a small {}.",
    "a tattoo of the {}.",
)

# MNIST: CLIP's list and template (identical in ReCLIP's file).
_MNIST = (
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9",
)

# Office-31 (domains amazon, dslr, webcam share the classes): the folder names in sorted order (ReCLIP's label order)
# with "_" replaced by spaces (the CLIP variant; not in CLIP's file). ReCLIP's file passes the raw folder names
# ("back_pack", the released variant) and uses "A photo of a {}." for amazon, "a photo of a {}." for dslr and webcam.
_OFFICE31 = (
    "back pack", "bike", "bike helmet", "bookcase", "bottle", "calculator", "desk chair", "desk lamp",
    "desktop computer", "file cabinet", "headphones", "keyboard", "laptop computer", "letter tray", "mobile phone",
    "monitor", "mouse", "mug", "paper notebook", "pen", "phone", "printer", "projector", "punchers", "ring binder",
    "ruler", "scissors", "speaker", "stapler", "tape dispenser", "trash can",
)

# Office-Home (domains Art, Clipart, Product, Real_World share the classes): the folder names in sorted order
# (torchvision ImageFolder's label order), "_" replaced by spaces. ReCLIP's file has the same 65 names but in the fixed
# order of ReCLIP's own loader (datasets.py, officehome.categories: Drill, Exit_Sign, Bottle, Glasses, ...) and the
# template "A photo of a {}."; labels from that loader need that order, labels from an ImageFolder need this one.
_OFFICE_HOME = (
    "Alarm Clock", "Backpack", "Batteries", "Bed", "Bike", "Bottle", "Bucket", "Calculator", "Calendar", "Candles",
    "Chair", "Clipboards", "Computer", "Couch", "Curtains", "Desk Lamp", "Drill", "Eraser", "Exit Sign", "Fan",
    "File Cabinet", "Flipflops", "Flowers", "Folder", "Fork", "Glasses", "Hammer", "Helmet", "Kettle", "Keyboard",
    "Knives", "Lamp Shade", "Laptop", "Marker", "Monitor", "Mop", "Mouse", "Mug", "Notebook", "Oven", "Pan",
    "Paper Clip", "Pen", "Pencil", "Postit Notes", "Printer", "Push Pin", "Radio", "Refrigerator", "Ruler", "Scissors",
    "Screwdriver", "Shelf", "Sink", "Sneakers", "Soda", "Speaker", "Spoon", "TV", "Table", "Telephone", "ToothBrush",
    "Toys", "Trash Can", "Webcam",
)

# Oxford-IIIT Pets: CLIP's names (cats capitalised, dogs lower case) in torchvision's label order (the dataset's class
# ids: case-insensitive alphabetical, which is ReCLIP's order). CLIP's file sorts them case-sensitively (the 12 cats
# first); ReCLIP's file uses torchvision's title-case names ("American Bulldog").
_OXFORD_PETS = (
    "Abyssinian", "american bulldog", "american pit bull terrier", "basset hound", "beagle", "Bengal", "Birman",
    "Bombay", "boxer", "British Shorthair", "chihuahua", "Egyptian Mau", "english cocker spaniel", "english setter",
    "german shorthaired", "great pyrenees", "havanese", "japanese chin", "keeshond", "leonberger", "Maine Coon",
    "miniature pinscher", "newfoundland", "Persian", "pomeranian", "pug", "Ragdoll", "Russian Blue", "saint bernard",
    "samoyed", "scottish terrier", "shiba inu", "Siamese", "Sphynx", "staffordshire bull terrier", "wheaten terrier",
    "yorkshire terrier",
)

# PatchCamelyon: CLIP's list (identical in ReCLIP's file). Templates differ: ReCLIP's "this is a medical image of {}"
# (released), CLIP's "this is a photo of {}" (PCam's accuracy depends strongly on the template).
_PCAM = (
    "lymph node", "lymph node containing metastatic tumor tissue",
)

# Rendered SST2 (CLIP's "SST2"): identical in ReCLIP's file.
_RENDEREDSST2 = (
    "negative", "positive",
)

# RESISC45: CLIP's list (identical in ReCLIP's file) = the sorted folder names with "_" replaced by spaces.
_RESISC45 = (
    "airplane", "airport", "baseball diamond", "basketball court", "beach", "bridge", "chaparral", "church",
    "circular farmland", "cloud", "commercial area", "dense residential", "desert", "forest", "freeway", "golf course",
    "ground track field", "harbor", "industrial area", "intersection", "island", "lake", "meadow", "medium residential",
    "mobile home park", "mountain", "overpass", "palace", "parking lot", "railway", "railway station",
    "rectangular farmland", "river", "roundabout", "runway", "sea ice", "ship", "snowberg", "sparse residential",
    "stadium", "storage tank", "tennis court", "terrace", "thermal power station", "wetland",
)

# CLIP's 18 RESISC45 templates (identical in ReCLIP's file), shared with AID.
_REMOTE_SENSING_TEMPLATES = (
    "satellite imagery of {}.", "aerial imagery of {}.", "satellite photo of {}.", "aerial photo of {}.",
    "satellite view of {}.", "aerial view of {}.", "satellite imagery of a {}.", "aerial imagery of a {}.",
    "satellite photo of a {}.", "aerial photo of a {}.", "satellite view of a {}.", "aerial view of a {}.",
    "satellite imagery of the {}.", "aerial imagery of the {}.", "satellite photo of the {}.",
    "aerial photo of the {}.", "satellite view of the {}.", "aerial view of the {}.",
)

# Stanford Cars: CLIP's list (identical in ReCLIP's file), in the devkit's label order.
_STANDFORD_CARS = (
    "AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Acura TL Sedan 2012", "Acura TL Type-S 2008",
    "Acura TSX Sedan 2012", "Acura Integra Type R 2001", "Acura ZDX Hatchback 2012",
    "Aston Martin V8 Vantage Convertible 2012", "Aston Martin V8 Vantage Coupe 2012",
    "Aston Martin Virage Convertible 2012", "Aston Martin Virage Coupe 2012", "Audi RS 4 Convertible 2008",
    "Audi A5 Coupe 2012", "Audi TTS Coupe 2012", "Audi R8 Coupe 2012", "Audi V8 Sedan 1994", "Audi 100 Sedan 1994",
    "Audi 100 Wagon 1994", "Audi TT Hatchback 2011", "Audi S6 Sedan 2011", "Audi S5 Convertible 2012",
    "Audi S5 Coupe 2012", "Audi S4 Sedan 2012", "Audi S4 Sedan 2007", "Audi TT RS Coupe 2012",
    "BMW ActiveHybrid 5 Sedan 2012", "BMW 1 Series Convertible 2012", "BMW 1 Series Coupe 2012",
    "BMW 3 Series Sedan 2012", "BMW 3 Series Wagon 2012", "BMW 6 Series Convertible 2007", "BMW X5 SUV 2007",
    "BMW X6 SUV 2012", "BMW M3 Coupe 2012", "BMW M5 Sedan 2010", "BMW M6 Convertible 2010", "BMW X3 SUV 2012",
    "BMW Z4 Convertible 2012", "Bentley Continental Supersports Conv. Convertible 2012", "Bentley Arnage Sedan 2009",
    "Bentley Mulsanne Sedan 2011", "Bentley Continental GT Coupe 2012", "Bentley Continental GT Coupe 2007",
    "Bentley Continental Flying Spur Sedan 2007", "Bugatti Veyron 16.4 Convertible 2009",
    "Bugatti Veyron 16.4 Coupe 2009", "Buick Regal GS 2012", "Buick Rainier SUV 2007", "Buick Verano Sedan 2012",
    "Buick Enclave SUV 2012", "Cadillac CTS-V Sedan 2012", "Cadillac SRX SUV 2012",
    "Cadillac Escalade EXT Crew Cab 2007", "Chevrolet Silverado 1500 Hybrid Crew Cab 2012",
    "Chevrolet Corvette Convertible 2012", "Chevrolet Corvette ZR1 2012",
    "Chevrolet Corvette Ron Fellows Edition Z06 2007", "Chevrolet Traverse SUV 2012",
    "Chevrolet Camaro Convertible 2012", "Chevrolet HHR SS 2010", "Chevrolet Impala Sedan 2007",
    "Chevrolet Tahoe Hybrid SUV 2012", "Chevrolet Sonic Sedan 2012", "Chevrolet Express Cargo Van 2007",
    "Chevrolet Avalanche Crew Cab 2012", "Chevrolet Cobalt SS 2010", "Chevrolet Malibu Hybrid Sedan 2010",
    "Chevrolet TrailBlazer SS 2009", "Chevrolet Silverado 2500HD Regular Cab 2012",
    "Chevrolet Silverado 1500 Classic Extended Cab 2007", "Chevrolet Express Van 2007",
    "Chevrolet Monte Carlo Coupe 2007", "Chevrolet Malibu Sedan 2007", "Chevrolet Silverado 1500 Extended Cab 2012",
    "Chevrolet Silverado 1500 Regular Cab 2012", "Chrysler Aspen SUV 2009", "Chrysler Sebring Convertible 2010",
    "Chrysler Town and Country Minivan 2012", "Chrysler 300 SRT-8 2010", "Chrysler Crossfire Convertible 2008",
    "Chrysler PT Cruiser Convertible 2008", "Daewoo Nubira Wagon 2002", "Dodge Caliber Wagon 2012",
    "Dodge Caliber Wagon 2007", "Dodge Caravan Minivan 1997", "Dodge Ram Pickup 3500 Crew Cab 2010",
    "Dodge Ram Pickup 3500 Quad Cab 2009", "Dodge Sprinter Cargo Van 2009", "Dodge Journey SUV 2012",
    "Dodge Dakota Crew Cab 2010", "Dodge Dakota Club Cab 2007", "Dodge Magnum Wagon 2008", "Dodge Challenger SRT8 2011",
    "Dodge Durango SUV 2012", "Dodge Durango SUV 2007", "Dodge Charger Sedan 2012", "Dodge Charger SRT-8 2009",
    "Eagle Talon Hatchback 1998", "FIAT 500 Abarth 2012", "FIAT 500 Convertible 2012", "Ferrari FF Coupe 2012",
    "Ferrari California Convertible 2012", "Ferrari 458 Italia Convertible 2012", "Ferrari 458 Italia Coupe 2012",
    "Fisker Karma Sedan 2012", "Ford F-450 Super Duty Crew Cab 2012", "Ford Mustang Convertible 2007",
    "Ford Freestar Minivan 2007", "Ford Expedition EL SUV 2009", "Ford Edge SUV 2012", "Ford Ranger SuperCab 2011",
    "Ford GT Coupe 2006", "Ford F-150 Regular Cab 2012", "Ford F-150 Regular Cab 2007", "Ford Focus Sedan 2007",
    "Ford E-Series Wagon Van 2012", "Ford Fiesta Sedan 2012", "GMC Terrain SUV 2012", "GMC Savana Van 2012",
    "GMC Yukon Hybrid SUV 2012", "GMC Acadia SUV 2012", "GMC Canyon Extended Cab 2012", "Geo Metro Convertible 1993",
    "HUMMER H3T Crew Cab 2010", "HUMMER H2 SUT Crew Cab 2009", "Honda Odyssey Minivan 2012",
    "Honda Odyssey Minivan 2007", "Honda Accord Coupe 2012", "Honda Accord Sedan 2012",
    "Hyundai Veloster Hatchback 2012", "Hyundai Santa Fe SUV 2012", "Hyundai Tucson SUV 2012",
    "Hyundai Veracruz SUV 2012", "Hyundai Sonata Hybrid Sedan 2012", "Hyundai Elantra Sedan 2007",
    "Hyundai Accent Sedan 2012", "Hyundai Genesis Sedan 2012", "Hyundai Sonata Sedan 2012",
    "Hyundai Elantra Touring Hatchback 2012", "Hyundai Azera Sedan 2012", "Infiniti G Coupe IPL 2012",
    "Infiniti QX56 SUV 2011", "Isuzu Ascender SUV 2008", "Jaguar XK XKR 2012", "Jeep Patriot SUV 2012",
    "Jeep Wrangler SUV 2012", "Jeep Liberty SUV 2012", "Jeep Grand Cherokee SUV 2012", "Jeep Compass SUV 2012",
    "Lamborghini Reventon Coupe 2008", "Lamborghini Aventador Coupe 2012",
    "Lamborghini Gallardo LP 570-4 Superleggera 2012", "Lamborghini Diablo Coupe 2001",
    "Land Rover Range Rover SUV 2012", "Land Rover LR2 SUV 2012", "Lincoln Town Car Sedan 2011",
    "MINI Cooper Roadster Convertible 2012", "Maybach Landaulet Convertible 2012", "Mazda Tribute SUV 2011",
    "McLaren MP4-12C Coupe 2012", "Mercedes-Benz 300-Class Convertible 1993", "Mercedes-Benz C-Class Sedan 2012",
    "Mercedes-Benz SL-Class Coupe 2009", "Mercedes-Benz E-Class Sedan 2012", "Mercedes-Benz S-Class Sedan 2012",
    "Mercedes-Benz Sprinter Van 2012", "Mitsubishi Lancer Sedan 2012", "Nissan Leaf Hatchback 2012",
    "Nissan NV Passenger Van 2012", "Nissan Juke Hatchback 2012", "Nissan 240SX Coupe 1998", "Plymouth Neon Coupe 1999",
    "Porsche Panamera Sedan 2012", "Ram C/V Cargo Van Minivan 2012",
    "Rolls-Royce Phantom Drophead Coupe Convertible 2012", "Rolls-Royce Ghost Sedan 2012",
    "Rolls-Royce Phantom Sedan 2012", "Scion xD Hatchback 2012", "Spyker C8 Convertible 2009", "Spyker C8 Coupe 2009",
    "Suzuki Aerio Sedan 2007", "Suzuki Kizashi Sedan 2012", "Suzuki SX4 Hatchback 2012", "Suzuki SX4 Sedan 2012",
    "Tesla Model S Sedan 2012", "Toyota Sequoia SUV 2012", "Toyota Camry Sedan 2012", "Toyota Corolla Sedan 2012",
    "Toyota 4Runner SUV 2012", "Volkswagen Golf Hatchback 2012", "Volkswagen Golf Hatchback 1991",
    "Volkswagen Beetle Hatchback 2012", "Volvo C30 Hatchback 2012", "Volvo 240 Sedan 1993", "Volvo XC90 SUV 2007",
    "smart fortwo Convertible 2012",
)

# STL-10: CLIP's list (identical in ReCLIP's file).
_STL10 = (
    "airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck",
)

# SUN397: CLIP's list (identical in ReCLIP's file), alphabetical (the order of the dataset's ClassName.txt).
_SUN397 = (
    "abbey", "airplane cabin", "airport terminal", "alley", "amphitheater", "amusement arcade", "amusement park",
    "anechoic chamber", "apartment building outdoor", "apse indoor", "aquarium", "aqueduct", "arch", "archive",
    "arrival gate outdoor", "art gallery", "art school", "art studio", "assembly line", "athletic field outdoor",
    "atrium public", "attic", "auditorium", "auto factory", "badlands", "badminton court indoor", "baggage claim",
    "bakery shop", "balcony exterior", "balcony interior", "ball pit", "ballroom", "bamboo forest", "banquet hall",
    "bar", "barn", "barndoor", "baseball field", "basement", "basilica", "basketball court outdoor", "bathroom",
    "batters box", "bayou", "bazaar indoor", "bazaar outdoor", "beach", "beauty salon", "bedroom", "berth",
    "biology laboratory", "bistro indoor", "boardwalk", "boat deck", "boathouse", "bookstore", "booth indoor",
    "botanical garden", "bow window indoor", "bow window outdoor", "bowling alley", "boxing ring", "brewery indoor",
    "bridge", "building facade", "bullring", "burial chamber", "bus interior", "butchers shop", "butte",
    "cabin outdoor", "cafeteria", "campsite", "campus", "canal natural", "canal urban", "candy store", "canyon",
    "car interior backseat", "car interior frontseat", "carrousel", "casino indoor", "castle", "catacomb",
    "cathedral indoor", "cathedral outdoor", "cavern indoor", "cemetery", "chalet", "cheese factory", "chemistry lab",
    "chicken coop indoor", "chicken coop outdoor", "childs room", "church indoor", "church outdoor", "classroom",
    "clean room", "cliff", "cloister indoor", "closet", "clothing store", "coast", "cockpit", "coffee shop",
    "computer room", "conference center", "conference room", "construction site", "control room",
    "control tower outdoor", "corn field", "corral", "corridor", "cottage garden", "courthouse", "courtroom",
    "courtyard", "covered bridge exterior", "creek", "crevasse", "crosswalk", "cubicle office", "dam", "delicatessen",
    "dentists office", "desert sand", "desert vegetation", "diner indoor", "diner outdoor", "dinette home",
    "dinette vehicle", "dining car", "dining room", "discotheque", "dock", "doorway outdoor", "dorm room", "driveway",
    "driving range outdoor", "drugstore", "electrical substation", "elevator door", "elevator interior",
    "elevator shaft", "engine room", "escalator indoor", "excavation", "factory indoor", "fairway",
    "fastfood restaurant", "field cultivated", "field wild", "fire escape", "fire station", "firing range indoor",
    "fishpond", "florist shop indoor", "food court", "forest broadleaf", "forest needleleaf", "forest path",
    "forest road", "formal garden", "fountain", "galley", "game room", "garage indoor", "garbage dump", "gas station",
    "gazebo exterior", "general store indoor", "general store outdoor", "gift shop", "golf course", "greenhouse indoor",
    "greenhouse outdoor", "gymnasium indoor", "hangar indoor", "hangar outdoor", "harbor", "hayfield", "heliport",
    "herb garden", "highway", "hill", "home office", "hospital", "hospital room", "hot spring", "hot tub outdoor",
    "hotel outdoor", "hotel room", "house", "hunting lodge outdoor", "ice cream parlor", "ice floe", "ice shelf",
    "ice skating rink indoor", "ice skating rink outdoor", "iceberg", "igloo", "industrial area", "inn outdoor",
    "islet", "jacuzzi indoor", "jail cell", "jail indoor", "jewelry shop", "kasbah", "kennel indoor", "kennel outdoor",
    "kindergarden classroom", "kitchen", "kitchenette", "labyrinth outdoor", "lake natural", "landfill", "landing deck",
    "laundromat", "lecture room", "library indoor", "library outdoor", "lido deck outdoor", "lift bridge", "lighthouse",
    "limousine interior", "living room", "lobby", "lock chamber", "locker room", "mansion", "manufactured home",
    "market indoor", "market outdoor", "marsh", "martial arts gym", "mausoleum", "medina", "moat water",
    "monastery outdoor", "mosque indoor", "mosque outdoor", "motel", "mountain", "mountain snowy",
    "movie theater indoor", "museum indoor", "music store", "music studio", "nuclear power plant outdoor", "nursery",
    "oast house", "observatory outdoor", "ocean", "office", "office building", "oil refinery outdoor", "oilrig",
    "operating room", "orchard", "outhouse outdoor", "pagoda", "palace", "pantry", "park", "parking garage indoor",
    "parking garage outdoor", "parking lot", "parlor", "pasture", "patio", "pavilion", "pharmacy", "phone booth",
    "physics laboratory", "picnic area", "pilothouse indoor", "planetarium outdoor", "playground", "playroom", "plaza",
    "podium indoor", "podium outdoor", "pond", "poolroom establishment", "poolroom home", "power plant outdoor",
    "promenade deck", "pub indoor", "pulpit", "putting green", "racecourse", "raceway", "raft", "railroad track",
    "rainforest", "reception", "recreation room", "residential neighborhood", "restaurant", "restaurant kitchen",
    "restaurant patio", "rice paddy", "riding arena", "river", "rock arch", "rope bridge", "ruin", "runway", "sandbar",
    "sandbox", "sauna", "schoolhouse", "sea cliff", "server room", "shed", "shoe shop", "shopfront",
    "shopping mall indoor", "shower", "skatepark", "ski lodge", "ski resort", "ski slope", "sky", "skyscraper", "slum",
    "snowfield", "squash court", "stable", "stadium baseball", "stadium football", "stage indoor", "staircase",
    "street", "subway interior", "subway station platform", "supermarket", "sushi bar", "swamp", "swimming pool indoor",
    "swimming pool outdoor", "synagogue indoor", "synagogue outdoor", "television studio", "temple east asia",
    "temple south asia", "tennis court indoor", "tennis court outdoor", "tent outdoor", "theater indoor procenium",
    "theater indoor seats", "thriftshop", "throne room", "ticket booth", "toll plaza", "topiary garden", "tower",
    "toyshop", "track outdoor", "train railway", "train station platform", "tree farm", "tree house", "trench",
    "underwater coral reef", "utility room", "valley", "van interior", "vegetable garden", "veranda",
    "veterinarians office", "viaduct", "videostore", "village", "vineyard", "volcano", "volleyball court indoor",
    "volleyball court outdoor", "waiting room", "warehouse indoor", "water tower", "waterfall block", "waterfall fan",
    "waterfall plunge", "watering hole", "wave", "wet bar", "wheat field", "wind farm", "windmill",
    "wine cellar barrel storage", "wine cellar bottle storage", "wrestling ring indoor", "yard", "youth hostel",
)

_PHOTO = ("a photo of a {}.",)
_IMAGENET_RELEASED_TEMPLATES = _PHOTO + _IMAGENET_CLIP_TEMPLATES
_IMAGENET_PHOTO_FIRST_TEMPLATES = _PHOTO + tuple(t for t in _IMAGENET_CLIP_TEMPLATES if t not in _PHOTO)
_CALTECH101_RELEASED = ("human face", "ID photo") + _CALTECH101[2:]
# ReCLIP's AID and Office-31 names: the folder names as they are.
_AID_RELEASED = tuple(name.replace("Sparse Residential", "SparseResidential").replace("Storage Tanks", "StorageTanks")
                      for name in _AID)
_OFFICE31_RELEASED = tuple(name.replace(" ", "_") for name in _OFFICE31)


def _registry(*entries: DatasetPrompts) -> dict[str, DatasetPrompts]:
    return {entry.name: entry for entry in entries}


DATASETS: dict[str, DatasetPrompts] = _registry(
    DatasetPrompts("aid", _AID_RELEASED, _REMOTE_SENSING_TEMPLATES),
    DatasetPrompts("birdsnap", _BIRDSNAP, ("a photo of a {}, a type of bird.",)),
    DatasetPrompts("caltech101", _CALTECH101_RELEASED, _CALTECH101_TEMPLATES),
    DatasetPrompts("cifar10", _CIFAR10, _CIFAR_TEMPLATES),
    DatasetPrompts("cifar100", _CIFAR100, _CIFAR_TEMPLATES),
    DatasetPrompts("country211", _COUNTRY211, (
        "a photo i took in {}.", "a photo i took while visiting {}.", "a photo from my home country of {}.",
        "a photo from my visit to {}.", "a photo showing the country of {}.")),
    DatasetPrompts("dtd", _DTD, (
        "a photo of a {} texture.", "a photo of a {} pattern.", "a photo of a {} thing.", "a photo of a {} object.",
        "a photo of the {} texture.", "a photo of the {} pattern.", "a photo of the {} thing.",
        "a photo of the {} object.")),
    DatasetPrompts("eurosat", _EUROSAT, (
        "a centered satellite photo of {}.", "a centered satellite photo of a {}.",
        "a centered satellite photo of the {}.")),
    DatasetPrompts("fer2013", _FER2013, (
        "a photo of a {} looking face.", "a photo of a face showing the emotion: {}.", "a photo of a face looking {}.",
        "a face that looks {}.", "they look {}.", "look at how {} they are."), _FER2013_SYNONYMS),
    DatasetPrompts("fgvc", _FGVC, ("a photo of a {}, a type of aircraft.", "a photo of the {}, a type of aircraft.")),
    DatasetPrompts("flowers102", _FLOWERS102, ("a photo of a {}, a type of flower.",)),
    DatasetPrompts("food101", _FOOD101, ("a photo of {}, a type of food.",)),
    DatasetPrompts("gtsrb", _GTSRB, (
        'a zoomed in photo of a "{}" traffic sign.', 'a centered photo of a "{}" traffic sign.',
        'a close up photo of a "{}" traffic sign.')),
    DatasetPrompts("imagenet", _IMAGENET, _IMAGENET_RELEASED_TEMPLATES),
    DatasetPrompts("mnist", _MNIST, ('a photo of the number: "{}".',)),
    # Office-31 domains (amazon, dslr, webcam) and Office-Home domains (Art, Clipart, Product, Real_World).
    DatasetPrompts("office_a", _OFFICE31_RELEASED, _PHOTO),
    DatasetPrompts("office_d", _OFFICE31_RELEASED, _PHOTO),
    DatasetPrompts("office_w", _OFFICE31_RELEASED, _PHOTO),
    DatasetPrompts("office_ar", _OFFICE_HOME, _PHOTO),
    DatasetPrompts("office_cl", _OFFICE_HOME, _PHOTO),
    DatasetPrompts("office_pr", _OFFICE_HOME, _PHOTO),
    DatasetPrompts("office_rw", _OFFICE_HOME, _PHOTO),
    DatasetPrompts("oxford_pets", _OXFORD_PETS, ("a photo of a {}, a type of pet.",)),
    DatasetPrompts("pcam", _PCAM, ("this is a medical image of {}",)),
    DatasetPrompts("renderedsst2", _RENDEREDSST2, ("a {} review of a movie.",)),
    DatasetPrompts("resisc45", _RESISC45, _REMOTE_SENSING_TEMPLATES),
    DatasetPrompts("standford_cars", _STANDFORD_CARS, (
        "a photo of a {}.", "a photo of the {}.", "a photo of my {}.", "i love my {}!", "a photo of my dirty {}.",
        "a photo of my clean {}.", "a photo of my new {}.", "a photo of my old {}.")),
    DatasetPrompts("stl10", _STL10, ("a photo of a {}.", "a photo of the {}.")),
    DatasetPrompts("sun397", _SUN397, ("a photo of a {}.", "a photo of the {}.")),
)
"""The ReCLIP datasets by ReCLIP's keys, with the released prompts."""

CLIP_VARIANTS: dict[str, DatasetPrompts] = {**DATASETS, **_registry(
    replace(DATASETS["aid"], classnames=_AID),
    replace(DATASETS["caltech101"], classnames=_CALTECH101),
    replace(DATASETS["imagenet"], templates=_IMAGENET_PHOTO_FIRST_TEMPLATES),
    *(replace(DATASETS[key], classnames=_OFFICE31) for key in ("office_a", "office_d", "office_w")),
    replace(DATASETS["pcam"], templates=("this is a photo of {}",)),
)}
"""The same datasets with CLIP's prompts where they differ from the released ones."""

ALIASES: dict[str, str] = {"stanford_cars": "standford_cars"}
"""Other names accepted by :func:`get_prompts`, mapped to their key in :data:`DATASETS`."""


def get_prompts(name: str, variant: str = "released") -> DatasetPrompts:
    """The :class:`DatasetPrompts` of dataset ``name`` (a key of :data:`DATASETS` or :data:`ALIASES`; case and
    "-" / "_" are not significant) in ``variant`` ("released" or "clip", see :data:`VARIANTS`). Raises KeyError,
    naming the known datasets, for any other name."""
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a string, got {type(name).__name__}")
    registry = _registry_of(variant)
    key = name.strip().lower().replace("-", "_")
    key = ALIASES.get(key, key)
    if key not in registry:
        known = ", ".join(sorted([*registry, *ALIASES]))
        raise KeyError(f"unknown dataset {name!r}; known datasets: {known}")
    return registry[key]


def _registry_of(variant: str) -> dict[str, DatasetPrompts]:
    if variant not in VARIANTS:
        raise ValueError(f"variant: use one of {', '.join(VARIANTS)}, got {variant!r}")
    return DATASETS if variant == "released" else CLIP_VARIANTS


@lru_cache(maxsize=1)
def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 WordNet ids of ImageNet-1k's classes in label order (sorted, as the class folders
    ``n01440764`` ...): ``imagenet_wnids()[i]`` is the folder of ``get_prompts("imagenet").classnames[i]``."""
    text = resources.files("clipadapt.clip").joinpath("imagenet_wnids.txt").read_text(encoding="utf-8")
    return tuple(text.split())


# Datasets whose class folders are ids rather than names: the ids of their classes in label order. A folder may hold
# any subset of them (ImageNet-100 is a folder of 100 wnids).
_FOLDER_IDS = {"imagenet": imagenet_wnids}


def match_folder(folder_names: Iterable[str], *, variant: str = "released",
                 dataset: str | None = None) -> DatasetPrompts | None:
    """The prompts of the dataset whose classes an image folder holds, in the folder's label order.

    ``folder_names`` are the class folder names in label order (``ImageFolder(...).classes``).
    They match a dataset when they are ImageNet wnids (any subset of the 1000), or when they
    are exactly the dataset's class names up to case, spaces and punctuation (``Alarm_Clock``
    for Office-Home's "Alarm Clock", ``SparseResidential`` for AID). The first dataset that
    matches is returned (domains of Office-31 or Office-Home share their prompts), with its
    classes reordered to the folder's order; ``None`` when none matches. ``dataset`` restricts
    the search to that key and raises ValueError when the folder does not match it.
    """
    names = _folder_names(folder_names)
    candidates = [get_prompts(dataset, variant)] if dataset is not None else list(_registry_of(variant).values())
    for entry in candidates:
        order = _folder_order(entry, names)
        if order is not None:
            return _reordered(entry, order)
    if dataset is not None:
        raise ValueError(f"dataset: the folder's classes {list(names)[:8]} are not the class names of {dataset!r}; "
                         "leave the dataset out to use the folder names as class names")
    return None


def prompts_for_folder(folder_names: Iterable[str], *, variant: str = "released",
                       dataset: str | None = None) -> DatasetPrompts:
    """:func:`match_folder`'s prompts, else :func:`from_folder`'s (the folder names as class names)."""
    names = _folder_names(folder_names)
    return match_folder(names, variant=variant, dataset=dataset) or from_folder(names)


def _folder_names(folder_names: Iterable[str]) -> tuple[str, ...]:
    if isinstance(folder_names, str):
        raise TypeError("folder_names must be a sequence of folder names, not a single string")
    return tuple(str(name) for name in folder_names)


def _name_key(name: str) -> str:
    """A name without case, spaces and punctuation: "Alarm_Clock", "alarm clock" -> "alarmclock"."""
    return re.sub(r"[^0-9a-z]+", "", name.lower())


def _folder_order(entry: DatasetPrompts, names: tuple[str, ...]) -> list[int] | None:
    """The dataset's class index of every folder, or None when the folders are not its classes."""
    if entry.name in _FOLDER_IDS:
        index = {identifier: i for i, identifier in enumerate(_FOLDER_IDS[entry.name]())}
        order = [index.get(name) for name in names]
        return order if None not in order and len(set(order)) == len(order) else None
    keys = {}
    for i, synonyms in enumerate(entry.classes_with_synonyms):
        for synonym in (synonyms,) if isinstance(synonyms, str) else synonyms:
            keys.setdefault(_name_key(synonym), set()).add(i)
    order = [keys.get(_name_key(name), set()) for name in names]
    if len(names) != entry.num_classes or any(len(classes) != 1 for classes in order):
        return None  # other classes, or names that do not tell the classes apart
    indices = [classes.pop() for classes in order]
    return indices if len(set(indices)) == len(indices) else None


def _reordered(entry: DatasetPrompts, order: list[int]) -> DatasetPrompts:
    if order == list(range(entry.num_classes)):
        return entry
    synonyms = None if entry.synonyms is None else [entry.synonyms[i] for i in order]
    return DatasetPrompts(entry.name, [entry.classnames[i] for i in order], entry.templates, synonyms)


def from_folder(classnames: Iterable[str], templates: Sequence[str] = ("a photo of a {}.",), *,
                name: str = "folder") -> DatasetPrompts:
    """Prompts for an image folder dataset: ``classnames`` are its class folder names in label order (e.g.
    torchvision ``ImageFolder(...).classes``, which are sorted); "_" becomes a space ("Alarm_Clock" -> "Alarm Clock").
    """
    if isinstance(classnames, str):
        raise TypeError("classnames must be a sequence of folder names, not a single string")
    names = tuple(str(folder).replace("_", " ").strip() for folder in classnames)
    if any(not classname for classname in names):
        raise ValueError("empty class name after replacing '_' by spaces")
    if len(set(names)) != len(names):
        duplicates = sorted({classname for classname in names if names.count(classname) > 1})
        raise ValueError(f"folder names give duplicate class names: {duplicates}")
    return DatasetPrompts(name, names, tuple(templates))
