"""Networks, heads, losses and the Lightning training modules."""
