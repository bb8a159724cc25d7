"""DICOM de-identification: PS3.15 Annex E Basic Profile with options, keyed pseudonyms, per-patient date shifts.

Modules: ``profile`` (the rule table, generated from the standard into ``annex_e.json``), ``iod`` (the IOD choice
of ``X/Z``, ``X/D``, ``Z/D``, ``X/Z/D`` from ``iod_types.json``), ``vocabulary`` (what cleaned text may keep),
``documents`` (blank encapsulated documents), ``actions`` (pure functions per action code), ``pseudonyms`` and
``keys`` (HMAC-SHA256 under a secret key), ``engine`` (one pass over a dataset), ``reader`` (defensive reading),
``instance`` (profile -> pixel cleaning -> marking), ``folder`` (``medflow deid``), ``table`` and
``table_screen`` (``medflow deid-table``).
"""
