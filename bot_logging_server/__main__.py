"""``python -m bot_logging_server``: the same command line as ``python3 app.py``."""

from bot_logging_server.cli import main

if __name__ == "__main__":
    main(prog_name="bot-logging-server")
