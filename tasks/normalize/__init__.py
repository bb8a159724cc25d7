"""Normalisation: frame timing, training views, volume assembly, intensity parameters, scan facts."""
