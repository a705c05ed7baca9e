"""One file per tab: its handlers and model jobs, its layout, its wiring. No tab imports another."""
