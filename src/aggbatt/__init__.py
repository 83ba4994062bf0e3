"""aggbatt: merge parallel batteries on Venus OS D-Bus into one virtual BMS battery."""

__version__ = "0.1.0"
