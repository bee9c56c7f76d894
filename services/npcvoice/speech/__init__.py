"""Speech recognition (faster-whisper): what the player said, and when."""
