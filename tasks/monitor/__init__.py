"""Input drift: new manifest rows against the champion's training rows (scipy two-sample tests)."""
