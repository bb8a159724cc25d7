"""Private attributes: removed, except the documented safe list under ``retain-safe-private``.

The safe list is deliberately short: technical acquisition parameters that research pipelines need
(diffusion b-values and gradient directions) and that hold no identity. Each entry is
``(private creator, group, element offset)``; the element offset is the low byte of the element.
"""

from __future__ import annotations

SAFE_PRIVATE: frozenset[tuple[str, int, int]] = frozenset(
    {
        ("SIEMENS MR HEADER", 0x0019, 0x0C),  # B_value
        ("SIEMENS MR HEADER", 0x0019, 0x0D),  # DiffusionDirectionality
        ("SIEMENS MR HEADER", 0x0019, 0x0E),  # DiffusionGradientDirection
        ("SIEMENS MR HEADER", 0x0019, 0x27),  # B_matrix
        ("GEMS_PARM_01", 0x0043, 0x39),  # slop_int_6..9 (b-value and scaling)
        ("GEMS_ACQU_01", 0x0019, 0xBB),  # user data 20 (diffusion direction x)
        ("GEMS_ACQU_01", 0x0019, 0xBC),  # user data 21 (diffusion direction y)
        ("GEMS_ACQU_01", 0x0019, 0xBD),  # user data 22 (diffusion direction z)
        ("Philips MR Imaging DD 001", 0x2001, 0x03),  # diffusion b-factor
        ("Philips MR Imaging DD 001", 0x2001, 0x04),  # diffusion direction
    }
)


def is_safe(creator: str, group: int, element: int) -> bool:
    """True if private element ``(group, element)`` in the block of ``creator`` is on the safe list."""
    return (creator.strip(" \x00"), group, element & 0xFF) in SAFE_PRIVATE
