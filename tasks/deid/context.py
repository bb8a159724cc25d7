"""Everything a de-identification worker needs, built once at the entry point and pickled to workers."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tasks.config import CleanPixelsMode
from tasks.deid.engine import identifying_text_tags
from tasks.deid.keys import DeidKey
from tasks.deid.options import DEFAULT_OPTIONS, DeidOption, normalise_options
from tasks.deid.profile import Profile, Rule, compile_rules, load_profile
from tasks.deid.pseudonyms import Pseudonymizer
from tasks.errors import ConfigError

DEFAULT_MAX_PIXEL_BYTES = 4 * 1024**3


@dataclass(frozen=True)
class DeidContext:
    """Profile, keyed pseudonymizer, options and pixel settings for one run (picklable; holds no PHI)."""

    profile: Profile
    pseudonymizer: Pseudonymizer
    options: frozenset[DeidOption]
    clean_pixels: CleanPixelsMode = CleanPixelsMode.AUTO
    pixel_options: Any = None
    max_pixel_bytes: int = DEFAULT_MAX_PIXEL_BYTES
    rules: dict[int, Rule] = field(default_factory=dict, repr=False, compare=False)
    text_tags: tuple[int, ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def create(
        cls,
        key: DeidKey,
        options: Iterable[DeidOption] = DEFAULT_OPTIONS,
        clean_pixels: CleanPixelsMode | str = CleanPixelsMode.AUTO,
        pixel_options: Any = None,
        max_pixel_bytes: int = DEFAULT_MAX_PIXEL_BYTES,
    ) -> DeidContext:
        """Compile the rules for ``options``; ``pixel_options`` defaults to ``tasks.pixels.PixelOptions`` with the
        engine and every-frame mode of the settings (MEDFLOW_OCR_ENGINE, MEDFLOW_OCR_EVERY_FRAME)."""
        options = normalise_options(options)
        mode = CleanPixelsMode(clean_pixels)
        if pixel_options is None and mode is not CleanPixelsMode.OFF:
            try:
                from tasks.pixels import PixelOptions  # the pixel step is only needed when it can run
            except ImportError:
                raise ConfigError(
                    "burned-in text cleaning (tasks.pixels) is not installed; install medflow fully "
                    "or pass --clean-pixels off for modalities without burned-in text"
                ) from None
            from tasks.config import load_settings

            pixel_options = PixelOptions.from_settings(load_settings())
        profile = load_profile()
        rules = compile_rules(options, profile)
        return cls(
            profile=profile,
            pseudonymizer=Pseudonymizer(key),
            options=options,
            clean_pixels=mode,
            pixel_options=pixel_options,
            max_pixel_bytes=max_pixel_bytes,
            rules=rules,
            text_tags=identifying_text_tags(rules),
        )

    def with_layout_file(self, path: object) -> DeidContext:
        """This context with pixel text layouts persisted in ``path`` (a dataset's or output's layout file)."""
        if self.pixel_options is None or not hasattr(self.pixel_options, "layout_file"):
            return self
        import dataclasses

        pixel_options = dataclasses.replace(self.pixel_options, layout_file=str(path))
        return dataclasses.replace(self, pixel_options=pixel_options)

    def __reduce__(self):  # rebuild the compiled rules in the worker instead of pickling ~5,000 entries
        return (
            _rebuild,
            (
                self.pseudonymizer.key,
                tuple(self.options),
                str(self.clean_pixels),
                self.pixel_options,
                self.max_pixel_bytes,
            ),
        )


def _rebuild(key, options, clean_pixels, pixel_options, max_pixel_bytes) -> DeidContext:
    return DeidContext.create(
        key, options=options, clean_pixels=clean_pixels, pixel_options=pixel_options, max_pixel_bytes=max_pixel_bytes
    )
