"""Pure generators of echo-like cine loops and CT/MR-like volumes (numpy in, numpy out; no I/O).

The echo phantom is a B-mode sector with multiplicative speckle, a bright myocardial wall around a
dark blood pool (an ellipse) and a beating cycle: both ellipse axes scale by ``s(t)``, so with the
area-length approximation volume ∝ s³ and the end-systolic scale ``(1 - EF) ** (1/3)`` gives the
ejection fraction exactly. The label lives in the motion: a single frame does not reveal it,
because the end-diastolic size varies between patients.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class EchoParams:
    """Everything that determines one synthetic cine loop."""

    frames: int
    height: int
    width: int
    fps: float
    ef: float  # ejection fraction, percent
    heart_rate: float  # beats per minute
    phase: float  # cycle phase at frame 0, in [0, 1)
    ed_radius: float  # end-diastolic long-axis half-length as a fraction of the sector depth
    tilt_deg: float
    top_bar: int  # rows reserved for burned-in text


def sector_mask(height: int, width: int, top: int, angle_deg: float = 75.0) -> np.ndarray:
    """Boolean fan-shaped scan region with its apex at the top centre, below ``top`` rows."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    apex_y, apex_x = float(top), (width - 1) / 2.0
    dy, dx = yy - apex_y, xx - apex_x
    radius = np.hypot(dx, dy)
    angle = np.degrees(np.arctan2(dx, np.maximum(dy, 1e-6)))
    depth = height - top - 2
    return (dy > 0) & (radius <= depth) & (np.abs(angle) <= angle_deg / 2)


def contraction_scale(t_seconds: np.ndarray, heart_rate: float, phase: float, ef: float) -> np.ndarray:
    """Axis scale over time: 1 at end-diastole, ``(1-EF)^(1/3)`` at end-systole (systole ~35% of the cycle)."""
    s_es = (1.0 - ef / 100.0) ** (1.0 / 3.0)
    cycle = (t_seconds * heart_rate / 60.0 + phase) % 1.0
    systole = 0.35
    # contraction: smooth fall over systole; relaxation: smooth rise over the rest of the cycle
    fall = 0.5 - 0.5 * np.cos(np.pi * np.clip(cycle / systole, 0, 1))
    rise = 0.5 - 0.5 * np.cos(np.pi * np.clip((cycle - systole) / (1 - systole), 0, 1))
    squeeze = np.where(cycle < systole, fall, 1.0 - rise)
    return 1.0 - (1.0 - s_es) * squeeze


def echo_frames(params: EchoParams, rng: np.random.Generator) -> np.ndarray:
    """Return uint8 frames (T, H, W): sector, speckle, a beating ventricle; the top bar left black."""
    h, w, top = params.height, params.width, params.top_bar
    mask = sector_mask(h, w, top)
    depth = h - top
    t = np.arange(params.frames) / params.fps
    scales = contraction_scale(t, params.heart_rate, params.phase, params.ef)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = top + 0.55 * depth, (w - 1) / 2.0
    theta = np.radians(params.tilt_deg)
    u = (xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)
    v = -(xx - cx) * np.sin(theta) + (yy - cy) * np.cos(theta)
    a_long = params.ed_radius * depth  # long axis (vertical-ish)
    a_short = 0.55 * a_long
    wall = 0.22 * a_long
    # static tissue texture (the same scatterers every frame, like a real probe over still tissue)
    tissue = cv2.GaussianBlur(rng.random((h, w), dtype=np.float32), (0, 0), 2.0) * 0.5 + 0.2
    out = np.zeros((params.frames, h, w), dtype=np.uint8)
    for i, s in enumerate(scales):
        r = np.sqrt((v / (a_long * s)) ** 2 + (u / (a_short * s)) ** 2)
        cavity = r < 1.0
        # the wall keeps its mass: it thickens as the cavity shrinks
        thickness = wall / s
        outer = np.sqrt((v / (a_long * s + thickness)) ** 2 + (u / (a_short * s + thickness)) ** 2) < 1.0
        img = tissue.copy()
        img[outer] = 0.85
        img[cavity] = 0.06
        speckle = rng.rayleigh(0.6, size=(h, w)).astype(np.float32)
        img = cv2.GaussianBlur(img * speckle, (3, 3), 0.8)
        img *= 1.0 - 0.5 * np.clip((yy - top) / depth, 0, 1)  # depth attenuation
        img[~mask] = 0.0
        out[i] = np.clip(img * 255.0, 0, 255).astype(np.uint8)
    return out


def burn_in_text(frames: np.ndarray, lines: list[str], bar_height: int) -> np.ndarray:
    """Write ``lines`` into the top bar of every frame (white Hershey text, as scanners do)."""
    bar = np.zeros((bar_height, frames.shape[2]), dtype=np.uint8)
    line_h = bar_height // max(len(lines), 1)
    for k, text in enumerate(lines):
        y = (k + 1) * line_h - 3
        cv2.putText(bar, text, (2, y), cv2.FONT_HERSHEY_SIMPLEX, 0.33, 255, 1, cv2.LINE_AA)
    frames = frames.copy()
    frames[:, :bar_height, :] = np.maximum(frames[:, :bar_height, :], bar[None])
    return frames


def volume(shape: tuple[int, int, int], modality: str, rng: np.random.Generator) -> np.ndarray:
    """An int16 (Z, Y, X) volume: a body ellipsoid with one brighter sphere; CT in HU, MR in arbitrary units."""
    z, y, x = np.mgrid[0 : shape[0], 0 : shape[1], 0 : shape[2]].astype(np.float32)
    cz, cy, cx = (np.array(shape, dtype=np.float32) - 1) / 2
    body = ((y - cy) / (0.42 * shape[1])) ** 2 + ((x - cx) / (0.46 * shape[2])) ** 2 < 1.0
    lz, ly, lx = cz + rng.uniform(-2, 2), cy + rng.uniform(-6, 6), cx + rng.uniform(-6, 6)
    lesion = ((z - lz) ** 2 + (y - ly) ** 2 + (x - lx) ** 2) < rng.uniform(16, 64)
    if modality == "CT":
        vol = np.full(shape, -1000.0, dtype=np.float32)
        vol[body] = 40.0
        vol[lesion & body] = 120.0
        vol += rng.normal(0, 12, size=shape).astype(np.float32)
    else:
        vol = np.zeros(shape, dtype=np.float32)
        vol[body] = 400.0
        vol[lesion & body] = 900.0
        vol += np.abs(rng.normal(0, 20, size=shape)).astype(np.float32)
    return np.round(vol).astype(np.int16)
