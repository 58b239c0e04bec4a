"""What the bot posts outside a command reply: the finished video, the live status and the
audit line, with the embeds and persistent button views they need (Discord REST)."""
