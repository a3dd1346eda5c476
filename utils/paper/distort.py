"""Scanning and photographing a printed page: `distort(image, mask, boxes, kind_levels, rng)`.

Each kind has a level in (0, 1] (0 or absent: not applied), mapped to a physical amount:

| kind | at level 1 |
| --- | --- |
| rotation | +-5 degrees |
| perspective | each corner moved up to 12 % of the page inwards (a phone held at an angle; the desk shows) |
| lens | barrel distortion, k1 = 0.12 (a corner moves ~10 % towards the centre) |
| crease | 1-3 folds: a dark line, one side lighter, the page shifted up to 0.8 mm across it |
| wrinkle | a smooth random warp of up to 1.5 mm, shaded by its slope |
| stain | 1-3 coffee rings (10-30 mm) |
| crop | up to 15 % cut from one or two sides |
| light | uneven light: vignetting, a gradient across the page, a colour cast, exposure |
| shadow | a soft-edged shadow (a hand, a phone) darkening by up to 55 % |
| blur | Gaussian, sigma 0.3 mm |
| motion | motion blur over 1.5 mm in one direction |
| resolution | down-sampled to 200 - 125 x level dpi (75 dpi at 1; nothing when the page is already coarser) |
| noise | sensor noise, sigma 14 (of 255) plus colour noise |
| jpeg | JPEG quality 95 - 65 x level (30 at 1) |

The order is the physical one: the paper (stains, creases, wrinkles), the camera's geometry (one backward map
for rotation, perspective, lens and the paper's warp, evaluated on a lattice of 4 mm cells, each cell mapped
bilinearly by PIL), the crop,
the sensor's resolution, blur, light and shadow, noise, JPEG. The geometric map moves the mask (bilinear, then
>= 50 %; after down-sampling a pixel is ink when >= 25 % of its area was) and the cell boxes (points along each
box's edges mapped forward: the new box is their axis-aligned bounds, clipped to the picture).

`PRESETS` are named mixes (`preset_levels(name, rng, level)`): `clean` (nothing), `scan` (small rotation, mild
blur, JPEG, 100-200 dpi, slight noise) and `photo` (perspective, lens, uneven light, shadow, blur, noise, JPEG,
sometimes creases, wrinkles, stains, a crop), each at level 1 (mild), 2 or 3 (strong).
"""
import io

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

KINDS = ("stain", "crease", "wrinkle", "rotation", "perspective", "lens", "crop", "resolution", "blur", "motion",
         "light", "shadow", "noise", "jpeg")
GEOMETRIC = ("rotation", "perspective", "lens", "crease", "wrinkle", "crop", "resolution")

# preset -> kind -> (probability, (low, high) level at preset level 2)
PRESETS = {
    "clean": {},
    "scan": {"rotation": (1.0, (0.02, 0.35)), "blur": (0.8, (0.05, 0.4)), "jpeg": (0.75, (0.05, 0.5)),
             "resolution": (1.0, (0.0, 0.8)), "noise": (0.8, (0.05, 0.3)), "light": (0.3, (0.05, 0.25)),
             "crop": (0.08, (0.1, 0.4))},
    "photo": {"perspective": (1.0, (0.15, 0.6)), "lens": (0.8, (0.1, 0.6)), "light": (1.0, (0.3, 0.8)),
              "shadow": (0.6, (0.2, 0.7)), "blur": (0.7, (0.1, 0.5)), "motion": (0.25, (0.1, 0.5)),
              "noise": (1.0, (0.15, 0.6)), "jpeg": (1.0, (0.2, 0.7)), "rotation": (0.7, (0.05, 0.6)),
              "resolution": (0.5, (0.1, 0.6)), "crease": (0.35, (0.3, 0.8)), "wrinkle": (0.3, (0.2, 0.7)),
              "stain": (0.2, (0.3, 0.9)), "crop": (0.2, (0.2, 0.6))},
}
LEVEL_SCALE = {1: 0.5, 2: 1.0, 3: 1.5}


def preset_levels(name, rng, level=2):
    """{kind: level} drawn for preset `name` (PRESETS) at level 1, 2 or 3."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    if level not in LEVEL_SCALE:
        raise ValueError(f"preset level {level!r}: 1, 2 or 3")
    out = {}
    for kind, (p, (lo, hi)) in PRESETS[name].items():
        u = rng.uniform(lo, hi)  # drawn always: a kind's level does not depend on which others were chosen
        if rng.random() < p:
            out[kind] = float(round(min(1.0, u * LEVEL_SCALE[level]), 3))
    return out


# -- the geometric map --------------------------------------------------------------------------------------------
class _Warp:
    """Page (source) pixel coordinates <-> picture (output) ones, before the crop: p + D(p) (the paper's own
    warp), then the homography M (rotation, perspective), then barrel distortion about the centre."""

    def __init__(self, w, h):
        self.w, self.h = w, h
        self.c = np.array([(w - 1) / 2, (h - 1) / 2])
        self.M = np.eye(3)
        self.k = 0.0
        self.r_norm = np.hypot(w, h) / 2
        self.folds = []  # (unit normal n, offset c, amplitude px, width px): D = amp * n * tanh((n.p - c) / width)
        self.waves = []  # (direction unit, wave vector, phase, amplitude px)

    @property
    def active(self):
        return not np.allclose(self.M, np.eye(3)) or self.k or self.folds or self.waves

    def displacement(self, x, y):
        dx, dy = np.zeros_like(x), np.zeros_like(y)
        for n, c, amp, width in self.folds:
            t = amp * np.tanh((n[0] * x + n[1] * y - c) / width)
            dx += n[0] * t
            dy += n[1] * t
        for u, kv, phase, amp in self.waves:
            t = amp * np.sin(kv[0] * x + kv[1] * y + phase)
            dx += u[0] * t
            dy += u[1] * t
        return dx, dy

    def backward(self, x, y):
        """Source coordinates of output points (arrays)."""
        if self.k:
            ux, uy = x - self.c[0], y - self.c[1]
            f = 1.0 + self.k * (ux * ux + uy * uy) / self.r_norm ** 2
            x, y = self.c[0] + ux * f, self.c[1] + uy * f
        Mi = np.linalg.inv(self.M)
        d = Mi[2, 0] * x + Mi[2, 1] * y + Mi[2, 2]
        x, y = (Mi[0, 0] * x + Mi[0, 1] * y + Mi[0, 2]) / d, (Mi[1, 0] * x + Mi[1, 1] * y + Mi[1, 2]) / d
        if self.folds or self.waves:  # p + D(p) = q: p = q - D(p), by fixed-point steps (D is small and smooth)
            px, py = x, y
            for _ in range(3):
                dx, dy = self.displacement(px, py)
                px, py = x - dx, y - dy
            x, y = px, py
        return x, y

    def forward(self, x, y):
        """Output coordinates of source points (arrays)."""
        dx, dy = self.displacement(x, y)
        x, y = x + dx, y + dy
        M = self.M
        d = M[2, 0] * x + M[2, 1] * y + M[2, 2]
        x, y = (M[0, 0] * x + M[0, 1] * y + M[0, 2]) / d, (M[1, 0] * x + M[1, 1] * y + M[1, 2]) / d
        if self.k:  # r_u = r_d (1 + k r_d^2): Newton steps for r_d
            ux, uy = x - self.c[0], y - self.c[1]
            ru = np.hypot(ux, uy) / self.r_norm
            rd = ru.copy()
            for _ in range(8):
                rd -= (rd * (1 + self.k * rd * rd) - ru) / (1 + 3 * self.k * rd * rd)
            s = np.where(ru > 0, rd / np.maximum(ru, 1e-12), 1.0)
            x, y = self.c[0] + ux * s, self.c[1] + uy * s
        return x, y


def homography(src, dst):
    """3 x 3 matrix mapping the 4 points src to dst."""
    a = []
    for (x, y), (u, v) in zip(src, dst):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y, -u])
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y, -v])
    _, _, vt = np.linalg.svd(np.asarray(a, np.float64))
    m = vt[-1].reshape(3, 3)
    return m / m[2, 2]


def _upsample(field, step, w, h):
    """A field sampled at (j * step, i * step) -> (h, w) float32, bilinear (PIL, mode F)."""
    im = Image.fromarray(np.ascontiguousarray(field, np.float32), "F")
    x0 = 0.5 - 0.5 / step
    return np.asarray(im.resize((w, h), Image.Resampling.BILINEAR, box=(x0, x0, x0 + w / step, x0 + h / step)))


def _mesh(warp, w, h, cell):
    """PIL's MESH data for `warp`: each `cell` px square of the output from the quadrilateral of the page its
    corners come from (bilinear between them). PIL's pixel centres are at +0.5, ours at integers."""
    ys, xs = np.arange(0, h + cell, cell), np.arange(0, w + cell, cell)
    Y, X = np.meshgrid(ys - 0.5, xs - 0.5, indexing="ij")
    SX, SY = warp.backward(X.astype(np.float64), Y.astype(np.float64))
    SX, SY = SX + 0.5, SY + 0.5
    quads = np.stack([SX[:-1, :-1], SY[:-1, :-1], SX[1:, :-1], SY[1:, :-1], SX[1:, 1:], SY[1:, 1:], SX[:-1, 1:],
                      SY[:-1, 1:]], -1).reshape(-1, 8)
    cells_ = np.stack(np.broadcast_arrays(xs[None, :-1], ys[:-1, None], xs[None, 1:], ys[1:, None]), -1).reshape(-1, 4)
    return list(zip(map(tuple, cells_.tolist()), map(tuple, quads.tolist())))


def _remap(img, mask, warp, cell, fill):
    """The picture and mask through `warp` in one PIL call: 4 channels carried as 'CMYK' (no colour meaning, and
    unlike RGBA not premultiplied)."""
    h, w = mask.shape
    four = Image.frombytes("CMYK", (w, h), np.ascontiguousarray(np.concatenate([img, mask[..., None]], 2)).tobytes())
    fill = tuple(int(v) for v in fill) + (0,)
    if warp.k or warp.folds or warp.waves:
        out = four.transform((w, h), Image.Transform.MESH, _mesh(warp, w, h, cell), Image.Resampling.BILINEAR,
                             fillcolor=fill)
    else:  # a homography alone: one call
        shift, back = np.eye(3), np.eye(3)
        shift[:2, 2], back[:2, 2] = 0.5, -0.5
        P = shift @ np.linalg.inv(warp.M) @ back
        P /= P[2, 2]
        out = four.transform((w, h), Image.Transform.PERSPECTIVE, tuple(P.ravel()[:8]), Image.Resampling.BILINEAR,
                             fillcolor=fill)
    out = np.asarray(out)
    return np.ascontiguousarray(out[..., :3]), np.where(out[..., 3] >= 128, 255, 0).astype(np.uint8)


def _box_bounds(warp, boxes, n=9):
    out = []
    t = np.linspace(0.0, 1.0, n)
    for x0, y0, x1, y1 in boxes:
        xs = np.concatenate([x0 + (x1 - x0) * t, np.full(n, x1), x0 + (x1 - x0) * t, np.full(n, x0)])
        ys = np.concatenate([np.full(n, y0), y0 + (y1 - y0) * t, np.full(n, y1), y0 + (y1 - y0) * t])
        fx, fy = warp.forward(xs.astype(np.float64), ys.astype(np.float64))
        out.append([fx.min(), fy.min(), fx.max(), fy.max()])
    return np.asarray(out, np.float64).reshape(-1, 4)


# -- the paper ----------------------------------------------------------------------------------------------------
def _stains(img, level, rng, ppm):
    h, w = img.shape[:2]
    for _ in range(int(rng.integers(1, 2 + int(level > 0.5) + int(level > 0.8)))):
        r = rng.uniform(10, 30) / 2 * ppm
        cx, cy = rng.uniform(0.05, 0.95) * w, rng.uniform(0.05, 0.95) * h
        x0, x1 = int(max(0, cx - 1.5 * r)), int(min(w, cx + 1.5 * r + 1))
        y0, y1 = int(max(0, cy - 1.5 * r)), int(min(h, cy + 1.5 * r + 1))
        if x1 <= x0 or y1 <= y0:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        dx, dy = xx - cx, yy - cy
        theta = np.arctan2(dy, dx)
        edge = np.ones_like(theta)
        for k in range(2, 6):
            edge += rng.uniform(0, 0.06) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
        rho = np.hypot(dx, dy) / (r * edge)
        ring = np.exp(-((rho - 1.0) / rng.uniform(0.03, 0.07)) ** 2)
        inside = (rho < 1.0) * rng.uniform(0.1, 0.35)
        alpha = np.clip((0.25 + 0.45 * level) * (ring + inside), 0, 0.85)[..., None]
        tint = np.asarray([rng.uniform(0.55, 0.75), rng.uniform(0.38, 0.55), rng.uniform(0.2, 0.35)], np.float32)
        region = img[y0:y1, x0:x1].astype(np.float32)
        img[y0:y1, x0:x1] = np.clip(region * (1 - alpha * (1 - tint)) + 0.5, 0, 255).astype(np.uint8)


def _folds(warp, level, rng, ppm, w, h, xc, yc):
    """Creases: fold lines across the page, added to the warp. Returns the lattice (xc, yc) shading of their
    sides (one side of a fold catches more light) and the lines' [(normal, offset, darkness)]."""
    shade = np.ones_like(xc)
    lines = []
    for _ in range(int(rng.integers(1, 2 + int(level > 0.4) + int(level > 0.75)))):
        if rng.random() < 0.7:  # along the page's thirds or halves (a folded printout), slightly skewed
            angle = (0.0 if rng.random() < 0.5 else np.pi / 2) + rng.normal(0, 0.04)
        else:
            angle = rng.uniform(0, np.pi)
        n = np.array([-np.sin(angle), np.cos(angle)])
        along = rng.choice([1 / 3, 1 / 2, 2 / 3]) + rng.normal(0, 0.03)
        c = n @ np.array([along * (w - 1), along * (h - 1)])
        warp.folds.append((n, c, level * 0.8 * ppm * rng.choice([-1, 1]), 2.0 * ppm))
        shade *= 1.0 + (0.02 + 0.05 * level) * np.tanh((n[0] * xc + n[1] * yc - c) / (3.0 * ppm)) * rng.choice([-1, 1])
        lines.append((n, c, 0.12 + 0.25 * level))
    return shade, lines


def _fold_lines(shade, lines, ppm):
    """The folds' thin dark lines (Gaussian, 0.25 mm), into `shade` (h, w): only the band around each line."""
    h, w = shade.shape
    width = 0.25 * ppm
    k = int(np.ceil(3 * width)) + 1
    for n, c, dark in lines:
        along_x = abs(n[1]) >= abs(n[0])  # a line closer to horizontal: walk its columns
        t = np.arange(w if along_x else h)
        centre = (c - (n[0] if along_x else n[1]) * t) / (n[1] if along_x else n[0])
        for d in range(-k, k + 1):
            u = np.round(centre).astype(int) + d
            ok = (u >= 0) & (u < (h if along_x else w))
            tt, uu = t[ok], u[ok]
            x, y = (tt, uu) if along_x else (uu, tt)
            sdist = n[0] * x + n[1] * y - c
            shade[y, x] *= (1.0 - dark * np.exp(-(sdist / width) ** 2)).astype(np.float32)


def _wrinkles(warp, level, rng, ppm, xc, yc):
    """A smooth random warp (a few plane waves), added to the warp; returns its shading on the lattice (xc, yc)."""
    light = rng.normal(size=2)
    light /= np.linalg.norm(light)
    slope = np.zeros_like(xc)
    for _ in range(4):
        a = rng.uniform(0, 2 * np.pi)
        kv = np.array([np.cos(a), np.sin(a)]) * 2 * np.pi / (rng.uniform(15, 60) * ppm)
        u = rng.normal(size=2)
        u /= np.linalg.norm(u)
        amp = level * 1.5 * ppm / 2 * rng.uniform(0.4, 1.0)
        phase = rng.uniform(0, 2 * np.pi)
        warp.waves.append((u, kv, phase, amp))
        slope += np.cos(kv[0] * xc + kv[1] * yc + phase) * (kv @ light) * amp
    return (1.0 + np.clip(slope * 0.35, -0.25, 0.25)).astype(np.float32)


# -- the distortion -----------------------------------------------------------------------------------------------
def distort(image, mask, boxes, kind_levels, rng, px_per_mm=None, jpeg_roundtrip=True):
    """(image, mask, boxes, applied) of a page scanned or photographed.

    image: PIL RGB (or (H, W, 3) uint8); mask: (H, W) uint8, 255 on trace ink; boxes: [[x0, y0, x1, y1], ...] px;
    kind_levels: {kind: level in (0, 1]} (KINDS); rng: numpy Generator; px_per_mm: the page's resolution (default:
    its long side taken as 297 mm); jpeg_roundtrip: False leaves JPEG to the caller (who saves the picture as a
    JPEG of quality `jpeg_quality(applied['jpeg'])`). Returns the PIL RGB picture, its mask (uint8 0/255), the
    boxes (float, clipped to the picture) and {kind: level} of what was applied."""
    unknown = set(kind_levels) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown distortion(s) {', '.join(sorted(unknown))}; known: {', '.join(KINDS)}")
    lv = {k: float(v) for k, v in kind_levels.items() if v and float(v) > 0}
    img = np.array(image.convert("RGB") if isinstance(image, Image.Image) else image, np.uint8)
    mask = np.asarray(mask, np.uint8)
    h, w = img.shape[:2]
    if mask.shape != (h, w):
        raise ValueError(f"mask {mask.shape} for a picture of {(h, w)}")
    ppm = float(px_per_mm or max(w, h) / 297.0)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    applied = {}
    photo_like = any(k in lv for k in ("perspective", "lens", "shadow"))

    # the paper
    if "stain" in lv:
        _stains(img, lv["stain"], rng, ppm)
        applied["stain"] = lv["stain"]
    warp = _Warp(w, h)
    step = max(4, int(round(ppm)))
    if "crease" in lv or "wrinkle" in lv:
        hc, wc = (h - 1) // step + 2, (w - 1) // step + 2
        yc, xc = np.mgrid[0:hc, 0:wc].astype(np.float64) * step
        lattice, lines = np.ones_like(xc), []
        if "crease" in lv:
            lattice, lines = _folds(warp, lv["crease"], rng, ppm, w, h, xc, yc)
            applied["crease"] = lv["crease"]
        if "wrinkle" in lv:
            lattice = lattice * _wrinkles(warp, lv["wrinkle"], rng, ppm, xc, yc)
            applied["wrinkle"] = lv["wrinkle"]
        shade = _upsample(lattice, step, w, h).copy()
        _fold_lines(shade, lines, ppm)
        img = np.clip(img * shade[..., None] + 0.5, 0, 255).astype(np.uint8)

    # the camera's geometry
    M = np.eye(3)
    if "rotation" in lv:
        a = np.deg2rad(5.0 * lv["rotation"]) * rng.choice([-1, 1])
        c = warp.c
        R = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
        T, Ti = np.eye(3), np.eye(3)
        T[:2, 2], Ti[:2, 2] = c, -c
        M = T @ R @ Ti
        applied["rotation"] = lv["rotation"]
    if "perspective" in lv:
        p = lv["perspective"]
        src = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float64)
        inward = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]], np.float64)
        tilt = rng.normal(size=2) * 0.5  # which edge is nearer the camera
        amount = rng.uniform(0.2, 1.0, (4, 2)) * 0.12 * p
        amount += 0.06 * p * np.clip(np.array([[tilt[0] + tilt[1]], [-tilt[0] + tilt[1]], [-tilt[0] - tilt[1]],
                                               [tilt[0] - tilt[1]]]), 0, 1)
        dst = src + inward * amount * np.array([w, h])
        M = homography(src, dst) @ M
        applied["perspective"] = p
    warp.M = M
    if "lens" in lv:
        warp.k = 0.12 * lv["lens"]
        applied["lens"] = lv["lens"]
    if warp.active:
        if photo_like:  # a desk: grey, brown or dark
            fill = np.asarray([(96, 92, 88), (120, 92, 64), (52, 52, 58), (170, 168, 160)][int(rng.integers(4))])
            fill = np.clip(fill + rng.normal(0, 8, 3), 0, 255).astype(np.uint8)
        else:  # a scanner's lid
            fill = np.full(3, int(rng.integers(238, 256)), np.uint8)
        img, mask = _remap(img, mask, warp, max(24, int(round(4 * ppm))), fill)
        boxes = _box_bounds(warp, boxes)

    # the crop
    if "crop" in lv:
        f = 0.15 * lv["crop"]
        cut = [0.0, 0.0, 0.0, 0.0]  # left, top, right, bottom
        for side in rng.choice(4, size=int(rng.integers(1, 3)), replace=False):
            cut[side] = rng.uniform(0.3, 1.0) * f
        x0, y0 = int(cut[0] * w), int(cut[1] * h)
        x1, y1 = w - int(cut[2] * w), h - int(cut[3] * h)
        img, mask = img[y0:y1, x0:x1], mask[y0:y1, x0:x1]
        boxes = boxes - np.array([x0, y0, x0, y0])
        h, w = img.shape[:2]
        applied["crop"] = lv["crop"]

    # the sensor's resolution
    if "resolution" in lv:
        target = (200.0 - 125.0 * lv["resolution"]) / 25.4
        if target < ppm * 0.97:
            f = target / ppm
            nw, nh = max(16, int(round(w * f))), max(16, int(round(h * f)))
            img = np.asarray(Image.fromarray(img).resize((nw, nh), Image.Resampling.BOX))
            small = Image.fromarray(mask).resize((nw, nh), Image.Resampling.BOX)
            mask = np.where(np.asarray(small) >= 64, 255, 0).astype(np.uint8)
            boxes = boxes * np.array([nw / w, nh / h, nw / w, nh / h])
            h, w, ppm = nh, nw, ppm * f
            applied["resolution"] = lv["resolution"]

    # optics
    pil = Image.fromarray(np.ascontiguousarray(img))
    if "blur" in lv:
        pil = pil.filter(ImageFilter.GaussianBlur((0.03 + 0.27 * lv["blur"]) * ppm))
        applied["blur"] = lv["blur"]
    img = np.asarray(pil)
    if "motion" in lv:
        length = max(2, int(round((0.3 + 1.2 * lv["motion"]) * ppm)))
        a = rng.uniform(0, np.pi)
        acc = np.zeros(img.shape, np.float32)
        for t in np.linspace(-0.5, 0.5, length):
            dx, dy = int(round(t * length * np.cos(a))), int(round(t * length * np.sin(a)))
            acc += np.roll(img, (dy, dx), axis=(0, 1))
        img = np.clip(acc / length + 0.5, 0, 255).astype(np.uint8)
        applied["motion"] = lv["motion"]

    # light, shadow, noise: one pass in float
    field, cast = None, np.ones(3, np.float32)
    if "light" in lv:
        L = lv["light"]
        ys, xs = np.linspace(-1, 1, h, dtype=np.float32), np.linspace(-1, 1, w, dtype=np.float32)
        g = rng.normal(size=2) * 0.35 * L
        v = rng.uniform(0.1, 0.4) * L
        ox, oy = rng.uniform(-0.4, 0.4, 2)
        exposure = rng.uniform(1.0 - 0.2 * L, 1.05)
        field = exposure * (1.0 + g[0] * xs[None, :] + g[1] * ys[:, None]
                            - v * (((xs - ox) ** 2)[None, :] + ((ys - oy) ** 2)[:, None]) / 2)
        cast = (1.0 + rng.uniform(-0.08, 0.08, 3) * L).astype(np.float32)
        cast /= cast.max()
        applied["light"] = L
    if "shadow" in lv:
        sw, sh = max(8, w // 8), max(8, h // 8)
        layer = Image.new("L", (sw, sh), 0)
        side = int(rng.integers(4))
        depth = rng.uniform(0.15, 0.5)
        a0, a1 = np.sort(rng.uniform(0, 1, 2))
        near, far = np.sort([a0 + rng.uniform(-0.25, 0.25), a1 + rng.uniform(-0.25, 0.25)])  # the inner edge
        d2 = 2 * depth
        poly = {0: [(a0, 0), (a1, 0), (far, d2), (near, d2)],
                1: [(1, a0), (1, a1), (1 - d2, far), (1 - d2, near)],
                2: [(a0, 1), (a1, 1), (far, 1 - d2), (near, 1 - d2)],
                3: [(0, a0), (0, a1), (d2, far), (d2, near)]}[side]
        poly = [(x * sw, y * sh) for x, y in poly]
        ImageDraw.Draw(layer).polygon(poly, fill=255)
        layer = layer.filter(ImageFilter.GaussianBlur(rng.uniform(1.0, 4.0))).resize((w, h), Image.Resampling.BILINEAR)
        dark = 1.0 - 0.55 * lv["shadow"] * np.asarray(layer, np.float32) / 255.0
        field = dark if field is None else field * dark
        applied["shadow"] = lv["shadow"]
    if field is not None or "noise" in lv:
        out = img.astype(np.float32)
        if field is not None:
            out *= field[..., None]
            out *= cast
        if "noise" in lv:
            sigma = 2.0 + 12.0 * lv["noise"]
            out += rng.standard_normal((h, w, 1), dtype=np.float32) * sigma
            chroma = rng.standard_normal(((h + 1) // 2, (w + 1) // 2, 3), dtype=np.float32) * (0.35 * sigma)
            out += chroma.repeat(2, 0).repeat(2, 1)[:h, :w]  # demosaicing spreads colour noise over 2 x 2
            applied["noise"] = lv["noise"]
        img = np.clip(out + 0.5, 0, 255).astype(np.uint8)

    picture = Image.fromarray(np.ascontiguousarray(img), "RGB")
    if "jpeg" in lv:
        applied["jpeg"] = lv["jpeg"]
        if jpeg_roundtrip:
            buf = io.BytesIO()
            picture.save(buf, format="JPEG", quality=jpeg_quality(lv["jpeg"]))
            picture = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    boxes = np.column_stack([np.clip(boxes[:, 0], 0, w), np.clip(boxes[:, 1], 0, h),
                             np.clip(boxes[:, 2], 0, w), np.clip(boxes[:, 3], 0, h)]) if len(boxes) else boxes
    applied = {k: float(round(applied[k], 3)) for k in KINDS if k in applied}
    return picture, mask, boxes.tolist(), applied


def jpeg_quality(level):
    return int(round(95 - 65 * float(level)))
