"""Method commands of the ``clipadapt`` CLI; each module imports its heavy dependencies only when run."""
