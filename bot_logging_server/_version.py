"""The package's version: the one place it is written.

`bot_logging_server.__version__` and ``setup.py`` (which reads this file without importing
the package, so without its dependencies) both take it from here.
"""

__version__ = "1.0.0"
