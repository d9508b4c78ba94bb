"""Helpers shared by the command-line tests."""
from clipadapt.cli import main


def refused(capsys, argv):
    """The one-line error of a command that must refuse ``argv`` with exit code 2."""
    capsys.readouterr()
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert len(error.splitlines()) == 1 and "Traceback" not in error, error
    return error
