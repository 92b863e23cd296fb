"""Run bot-logging-server: ``python3 app.py --help`` lists every option."""

from bot_logging_server.cli import main

if __name__ == "__main__":
    main(prog_name="app.py")
