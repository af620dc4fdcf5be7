"""shopbot: command line, settings and process orchestration around the bot."""
