"""Face: viseme frames and events from phoneme timings or audio."""
