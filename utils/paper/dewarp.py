"""Photographs of a page: find the sheet in the picture and resample it fronto-parallel, `dewarp(rgb) -> rgb`.

A phone photo shows the page at an angle (a perspective quadrilateral), bowed by the lens (barrel distortion), on a
desk. The digitiser reads a page whose grid is square and straight and which fills the picture; this step makes a
photo so, and leaves any other picture alone (returns it unchanged, the same array):

1. the sheet's edges: on a reduced, median-smoothed copy of the brightness (traces and thin grid lines vanish), each
   scanline from each side of the picture inwards is searched for its first strong dark-to-bright step (desk to
   paper; the outside clearly darker than the paper beyond it); a side where few scanlines have one is taken as
   cut by the picture's edge (a crop, or a scan: no desk);
2. the lens: the radial term k (r_u = r_d (1 + k r_d^2), r over the half diagonal, about the picture's centre)
   that makes the edge points of the sides found straightest (a line fitted through each, trimmed);
3. the sheet's corners: where the sides' lines meet (a cut side is the picture's edge, undistorted);
4. a homography from the corners to a rectangle as large as the sheet's edges are long; the picture is sampled
   through it (and the lens term; PIL's MESH transform, bilinear), what lies beyond the corners made paper;
5. the rectangle's aspect (foreshortening misleads the edges' lengths) is corrected when the grid's 5 mm periods
   across and down (utils.paper.digitize.grid_period) differ by more than 3 % (the digitiser reads both anyway);
6. the desk still showing along a found edge (a bowed, curled or wrinkled edge the corners' lines miss), and the
   sheet's outermost 1 % there, made paper: what is connected to that border and clearly darker than the paper
   nearby, in a band along it; "paper" is the page's own smoothed background colour nearby, not white (white next
   to a dim, vignetted corner would make its paper look like ink to the digitiser's blockwise paper level).

Applied only when the sheet's edges are found on at least two sides (a desk-to-paper step on most of their
scanlines, straight once the lens term is undone; a scan or a render fills its picture and has none): then clean
and scanned pages go through exactly as before.
Every threshold is relative to the picture itself (its size, its paper's brightness), never a renderer's colours.
"""
import numpy as np
from PIL import Image
from scipy import ndimage

from .distort import homography

WORK_SIDE = 480  # long side of the reduced copy the edges are found on
MIN_STEP = 0.18  # a desk-to-paper step: at least this share of the paper's brightness
MIN_SIDE_SHARE = 0.35  # a side is found when this share of its scanlines has a step
MIN_DESK = 0.0  # ... and the desk beyond it is at least this share of the picture across (+ 1.5 px)
RESAMPLE = Image.Resampling.BILINEAR
FRAME = 0.01  # the rectified sheet's outermost share along a found edge is made paper (a printer's margin)
K_GRID = np.round(np.arange(-0.06, 0.301, 0.01), 3)  # lens terms searched


def _reduced(rgb):
    """(brightness 0-1 of a reduced copy, median-smoothed, factor): the brightest channel, so a coloured grid is
    as light as the paper."""
    h, w = rgb.shape[:2]
    f = max(1, int(np.ceil(max(h, w) / WORK_SIDE)))
    im = Image.fromarray(rgb).reduce(f) if f > 1 else Image.fromarray(rgb)
    v = np.asarray(im).max(axis=2)
    v = ndimage.median_filter(v, size=5, mode="nearest").astype(np.float32)
    top = max(float(np.percentile(v, 95)), 1.0)
    return v / top, f


def _side_points(v, side):
    """Edge points (x, y) in the reduced copy where scanlines from `side` (0 left, 1 right, 2 top, 3 bottom) meet
    the sheet, and the share of scanlines that had one."""
    a = v if side in (0, 1) else v.T
    if side in (1, 3):
        a = a[:, ::-1]
    n, m = a.shape
    depth = int(0.4 * m)
    seg = a[:, :depth]
    # paper level inward of each point: a running max ahead (the sheet's bright paper)
    ahead = ndimage.maximum_filter1d(seg, size=9, axis=1, origin=-4)
    behind = ndimage.uniform_filter1d(seg, size=5, axis=1, origin=2)  # mean of the 5 px before (outside)
    step = ahead - behind
    ok = (step > MIN_STEP) & (behind < 0.82 * ahead) & (ahead > 0.45)
    ok[:, :3] = False
    has = ok.any(axis=1)
    first = np.argmax(ok, axis=1)
    idx = np.flatnonzero(has)
    pts = []
    sm = ndimage.uniform_filter1d(a, 3, axis=0)  # neighbouring scanlines averaged: less noise
    for i in idx:  # refine: where the profile crosses halfway from the desk's level to the paper's
        j0 = first[i]
        top = ahead[i, j0]
        outside = a[i, :max(1, j0 - 1)]
        if outside.size and np.median(outside) > 0.8 * top:
            continue  # outside the edge must be mostly darker, all the way to the border (a desk, not a trace)
        low = float(np.median(sm[i, max(0, j0 - 8):max(1, j0 - 1)]))
        mid = 0.5 * (low + top)
        row = sm[i, max(0, j0 - 2):j0 + 10]
        above = np.flatnonzero(row >= mid)
        if not len(above) or above[0] == 0:
            continue
        t = above[0]
        y0, y1 = row[t - 1], row[t]
        j = max(0, j0 - 2) + t - 1 + (mid - y0) / max(y1 - y0, 1e-6)
        pts.append((j, i))
    pts = np.asarray(pts, np.float64).reshape(-1, 2)
    share = len(pts) / max(n, 1)
    # back to (x, y) in the reduced copy
    if side in (1, 3):
        pts[:, 0] = m - 1 - pts[:, 0]
    if side in (2, 3):
        pts = pts[:, ::-1]
    return pts, share


def _undistort(pts, c, rn, k):
    u = pts - c
    f = 1.0 + k * (u ** 2).sum(axis=1) / rn ** 2
    return c + u * f[:, None]


def _fit_line(pts, iters=3, keep=0.8):
    """(unit normal n, offset d) with n.p = d, trimmed least squares; and the rms residual of the kept points."""
    p = pts
    for _ in range(iters):
        m = p.mean(axis=0)
        _, _, vt = np.linalg.svd(p - m, full_matrices=False)
        n = vt[-1]
        d = float(n @ m)
        r = np.abs(pts @ n - d)
        cut = np.quantile(r, keep)
        p = pts[r <= cut + 1e-9]
    r = p @ n - d
    return n, d, float(np.sqrt(np.mean(r ** 2)))


def _intersect(l1, l2):
    (n1, d1), (n2, d2) = l1, l2
    A = np.array([n1, n2])
    if abs(np.linalg.det(A)) < 1e-6:
        return None
    return np.linalg.solve(A, np.array([d1, d2]))


def find_sheet(rgb, debug=None):
    """(corners (4, 2) in undistorted picture px: top-left, top-right, bottom-right, bottom-left; lens k; centre;
    half diagonal; [left, right, top, bottom] edge found) of the sheet in a photo, or None when the picture is not a
    photo of a sheet on a background."""
    h, w = rgb.shape[:2]
    v, f = _reduced(rgb)
    hr, wr = v.shape
    sides, shares = [], []
    for s in range(4):
        pts, share = _side_points(v, s)
        sides.append(pts)
        shares.append(share)
    found = []
    for s in range(4):
        pts = sides[s]
        if shares[s] < MIN_SIDE_SHARE or len(pts) < 10:
            found.append(False)
            continue
        depth = pts[:, 0] if s == 0 else (wr - 1 - pts[:, 0]) if s == 1 else pts[:, 1] if s == 2 else hr - 1 - pts[:, 1]
        span = wr if s in (0, 1) else hr
        found.append(float(np.median(depth)) >= MIN_DESK * span + 1.5)
    if debug is not None:
        debug.update(dewarp_shares=shares, dewarp_found=found)
    if sum(found) < 2:
        return None
    c = np.array([(w - 1) / 2, (h - 1) / 2]) / f
    rn = np.hypot(w, h) / 2 / f
    # the lens term: found sides straightest
    best = None
    # the middle of each side only: scanlines near a corner may meet the next side's desk
    mids = {}
    for s in range(4):
        if found[s]:
            pts = sides[s]
            along = pts[:, 1] if s in (0, 1) else pts[:, 0]
            lo, hi = np.quantile(along, [0.12, 0.88])
            mid = pts[(along >= lo) & (along <= hi)]
            n, d, rms = _fit_line(mid)
            r = np.abs(mid @ n - d)
            mids[s] = mid[r <= max(3 * np.median(r), 1.0)]
    for k in K_GRID:
        err = 0.0
        for s, mid in mids.items():
            _, _, rms = _fit_line(_undistort(mid, c, rn, k), iters=1, keep=1.0)
            err += rms ** 2
        if best is None or err < best[0] - 1e-9:
            best = (err, k)
    k = float(best[1])
    lines = []
    border = [(np.array([1.0, 0.0]), 0.0), (np.array([1.0, 0.0]), wr - 1.0), (np.array([0.0, 1.0]), 0.0),
              (np.array([0.0, 1.0]), hr - 1.0)]
    for s in range(4):
        if found[s]:
            n, d, rms = _fit_line(_undistort(sides[s], c, rn, k))
            if rms > 0.01 * max(hr, wr) + 1.0:  # not a straight edge: no sheet
                return None
            lines.append((n, d))
        else:  # cut by the picture's edge: that edge, undistorted (its middle)
            n, d = border[s]
            mid = np.array([[d, c[1]]]) if s in (0, 1) else np.array([[c[0], d]])
            u = _undistort(mid, c, rn, k)[0]
            lines.append((n, float(n @ u)))
    left, right, top, bottom = lines
    corners = [_intersect(top, left), _intersect(top, right), _intersect(bottom, right), _intersect(bottom, left)]
    if any(p is None for p in corners):
        return None
    corners = np.array(corners)
    # a sane quadrilateral: most of the picture (shoelace area)
    x, y = corners[:, 0], corners[:, 1]
    area = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
    if area < 0.25 * hr * wr or area > 1.6 * hr * wr:
        return None
    if debug is not None:
        debug.update(dewarp_k=k, dewarp_corners=corners * f)
    return corners * f, k, c * f, rn * f, found


def _grid_ratio(rgb):
    """Period down / period across of the grid of a fronto-parallel picture (nan without a clear grid)."""
    from .digitize import Ink, grid_period  # lazy: digitize imports this module
    im = Image.fromarray(rgb)
    r = max(1, int(round(max(rgb.shape[:2]) / 1100)))
    if r > 1:
        im = im.reduce(r)
    a = np.asarray(im)
    ink = Ink(a.max(axis=2), a.min(axis=2))
    h, w = ink.shape
    g = ink.grid[h // 8:h - h // 8, w // 8:w - w // 8]
    px, cx, _ = grid_period(g.mean(axis=0))
    py, cy, _ = grid_period(g.mean(axis=1))
    if not (np.isfinite(px) and np.isfinite(py)) or min(cx, cy) < 0.2:
        return float("nan")
    return py / px


def _sample(rgb, H, k, c, rn, out_w, out_h, fill=255):
    """The picture sampled at the page points (0..out_w, 0..out_h) mapped by H^-1 (rectified -> undistorted
    picture) and the lens (undistorted -> picture), on a lattice of cells mapped bilinearly (PIL MESH)."""
    cell = 48
    xs, ys = np.arange(0, out_w + cell, cell), np.arange(0, out_h + cell, cell)
    Y, X = np.meshgrid(ys - 0.5, xs - 0.5, indexing="ij")
    Hi = np.linalg.inv(H)
    d = Hi[2, 0] * X + Hi[2, 1] * Y + Hi[2, 2]
    ux = (Hi[0, 0] * X + Hi[0, 1] * Y + Hi[0, 2]) / d - c[0]
    uy = (Hi[1, 0] * X + Hi[1, 1] * Y + Hi[1, 2]) / d - c[1]
    if k:  # r_u = r_d (1 + k r_d^2): Newton for r_d
        ru = np.hypot(ux, uy) / rn
        rd = ru.copy()
        for _ in range(10):
            rd -= (rd * (1 + k * rd * rd) - ru) / (1 + 3 * k * rd * rd)
        s = np.where(ru > 0, rd / np.maximum(ru, 1e-12), 1.0)
        ux, uy = ux * s, uy * s
    SX, SY = ux + c[0] + 0.5, uy + c[1] + 0.5
    quads = np.stack([SX[:-1, :-1], SY[:-1, :-1], SX[1:, :-1], SY[1:, :-1], SX[1:, 1:], SY[1:, 1:], SX[:-1, 1:],
                      SY[:-1, 1:]], -1).reshape(-1, 8)
    boxes = np.stack(np.broadcast_arrays(xs[None, :-1], ys[:-1, None], xs[None, 1:], ys[1:, None]), -1).reshape(-1, 4)
    mesh = list(zip(map(tuple, boxes.tolist()), map(tuple, quads.tolist())))
    # the picture and a mask of where it reaches in one call: 4 channels as 'CMYK' (unlike RGBA not premultiplied)
    four = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
    out = Image.frombytes("CMYK", (rgb.shape[1], rgb.shape[0]), np.ascontiguousarray(four).tobytes()).transform(
        (int(out_w), int(out_h)), Image.Transform.MESH, mesh, RESAMPLE, fillcolor=(fill, fill, fill, 0))
    out = np.asarray(out)
    return np.ascontiguousarray(out[..., :3]), out[..., 3] >= 128


def dewarp(rgb, debug=None):
    """`rgb` (H, W, 3) uint8 resampled fronto-parallel when it is a photo of a sheet on a background (its edges
    found, a perspective quadrilateral, maybe bowed by the lens), else `rgb` itself, unchanged."""
    found = find_sheet(rgb, debug)
    if found is None:
        return rgb
    corners, k, c, rn, sides = found
    tl, tr, br, bl = corners
    out_w = 0.5 * (np.linalg.norm(tr - tl) + np.linalg.norm(br - bl))
    out_h = 0.5 * (np.linalg.norm(bl - tl) + np.linalg.norm(br - tr))
    # as large as the sheet's edges are long (its resolution in the picture, on average)
    H = homography(corners, [(0, 0), (out_w, 0), (out_w, out_h), (0, out_h)])
    out, inside = _sample(rgb, H, k, c, rn, int(round(out_w)), int(round(out_h)))
    ratio = _grid_ratio(out)  # foreshortening misleads the edges' lengths: the grid's cells made square
    if np.isfinite(ratio) and 0.8 < ratio < 1.25 and abs(ratio - 1) > 0.03:  # the digitiser allows 8 %
        out_h2 = out_h / ratio
        H = homography(corners, [(0, 0), (out_w, 0), (out_w, out_h2), (0, out_h2)])
        out, inside = _sample(rgb, H, k, c, rn, int(round(out_w)), int(round(out_h2)))
    out = _blank_outside(out, inside, sides)
    if debug is not None:
        debug.update(dewarp_ratio=ratio, dewarp_size=out.shape[:2])
    return out


def _blank_outside(out, inside, found, band=0.06):
    """The rectified page with what is not the sheet made paper: outside the corners' quadrilateral (`inside`
    False), the sheet's outermost FRAME along its found edges (`found`: left, right, top, bottom), and, in a band
    along each such edge, what is connected to it and clearly darker than the paper nearby (the desk where the
    corners' lines miss a bowed, curled or wrinkled edge). Paper is the page's own background there (its
    brightest nearby, smoothed: white would make the dim paper of a dark corner look like ink)."""
    h, w = out.shape[:2]
    v, f = _reduced(out)
    hr, wr = v.shape
    paper = ndimage.maximum_filter(v, size=max(5, int(0.04 * max(hr, wr))), mode="nearest")
    dark = v < 0.82 * paper
    zone = np.zeros_like(dark)
    bx, by = max(2, int(band * wr)), max(2, int(band * hr))
    left, right, top, bottom = found
    for on, sl in ((left, np.s_[:, :bx]), (right, np.s_[:, -bx:]), (top, np.s_[:by]), (bottom, np.s_[-by:])):
        if on:
            zone[sl] = True
    lab, n = ndimage.label(dark & zone)
    blank = np.zeros((hr, wr), bool)
    if n:
        edge = np.zeros(n + 1, bool)
        for on, sl in ((left, np.s_[:, 0]), (right, np.s_[:, -1]), (top, np.s_[0]), (bottom, np.s_[-1])):
            if on:
                edge[np.unique(lab[sl])] = True
        edge[0] = False
        blank = ndimage.binary_dilation(edge[lab], iterations=1)
    full = ~inside
    if blank.any():
        full |= np.asarray(Image.fromarray(blank.astype(np.uint8) * 255).resize((w, h), Image.Resampling.BILINEAR)) > 0
    fx, fy = max(1, int(FRAME * w)), max(1, int(FRAME * h))  # the sheet's own edge: no printer inks it
    for on, sl in ((left, np.s_[:, :fx]), (right, np.s_[:, -fx:]), (top, np.s_[:fy]), (bottom, np.s_[-fy:])):
        if on:
            full[sl] = True
    if not full.any():
        return out
    # the paper's colour around: each channel's brightest nearby on a reduced copy, averaged over the sheet only
    small = np.asarray(Image.fromarray(out).reduce(f) if f > 1 else Image.fromarray(out)).astype(np.float32)
    keep = ~(np.asarray(Image.fromarray(full.astype(np.uint8) * 255).reduce(f) if f > 1 else
                        Image.fromarray(full.astype(np.uint8) * 255)) > 0)
    size = max(5, int(0.03 * max(hr, wr)))
    bg = np.empty_like(small)
    for ch in range(3):
        m = ndimage.maximum_filter(np.where(keep, small[..., ch], 0), size=size, mode="nearest")
        mk = ndimage.maximum_filter(keep, size=size, mode="nearest")
        sm = ndimage.uniform_filter(np.where(mk, m, 0), size * 3, mode="nearest")
        sw = ndimage.uniform_filter(mk.astype(np.float32), size * 3, mode="nearest")
        bg[..., ch] = np.where(sw > 1e-3, sm / np.maximum(sw, 1e-3), 255)
    bg = np.clip(bg, 0, 255).astype(np.uint8)
    big = np.asarray(Image.fromarray(bg).resize((w, h), Image.Resampling.BILINEAR))
    out = np.array(out)
    out[full] = big[full]
    return out
