"""Compiled CPU kernels for the simulator's collisions (``SimEnv(collisions=True)``).

The same push and steering as the tensor code in ``SimEnv._substep`` / ``SimEnv._steer``
(docs/simulator.md, mechanics 5-7), written as loops over environments and unit pairs and
compiled by numba. On the CPU the tensor version pays one dispatch per op on small ``[E, U, U]``
tensors (about 40 of them a chunk); here a pair that does not touch costs a few flops. The
tensor version stays the reference (and runs on GPUs and without numba):
``tests/test_envs.py::test_collision_kernels_match_the_tensor_code`` keeps the two equal.

Optional: ``pip install hygen[fast]`` installs numba; ``HYGEN_SIM_KERNELS=0`` turns them off.
"""

from __future__ import annotations

import functools
import importlib.util
import os

import numpy as np

_F = np.float32
_ZERO, _ONE, _HALF = _F(0.0), _F(1.0), _F(0.5)
_TOWARDS_EPS, _MIN_DIST = _F(1e-6), _F(1e-3)
_P_MIN, _DISC_MIN, _W2_MIN, _CLOSING_MAX = _F(1e-12), _F(1e-30), _F(1e-12), _F(-1e-6)


def available() -> bool:
    """numba is installed and the kernels are not switched off (``HYGEN_SIM_KERNELS=0``)."""
    return os.environ.get("HYGEN_SIM_KERNELS", "1") != "0" and importlib.util.find_spec("numba") is not None


@functools.cache
def compiled():
    """``(push, steer)`` compiled by numba, imported on first use (importing numba takes about
    0.3 s; the compiled code is cached on disk next to this module)."""
    import numba

    jit = numba.njit(cache=True, error_model="numpy")
    return jit(_push), jit(_steer)


def _push(xy, start, moved, live, sep, sep2):
    """Overlapping living units are pushed apart, the one that walked into the other taking the
    push (in proportion to how far each moved towards the other in the last chunk). Copies the
    positions ``xy`` [E, 2, U] to ``start`` (the chunk start the steering reads), then pushes
    ``xy`` in place, each pair once from the start positions."""
    E, U = xy.shape[0], xy.shape[2]
    for e in range(E):
        for i in range(U):
            start[e, 0, i], start[e, 1, i] = xy[e, 0, i], xy[e, 1, i]
        for i in range(U):
            if not live[e, i]:
                continue
            xi, yi = start[e, 0, i], start[e, 1, i]
            mxi, myi = moved[e, 0, i], moved[e, 1, i]
            for j in range(i + 1, U):
                if not live[e, j]:
                    continue
                rx, ry = start[e, 0, j] - xi, start[e, 1, j] - yi  # from i to j
                if rx * rx + ry * ry >= sep2[i, j]:  # apart (the common case)
                    continue
                d = np.hypot(rx, ry)
                over = sep[i, j] - d
                if over <= _ZERO:
                    continue
                ti = max(rx * mxi + ry * myi, _ZERO) + _TOWARDS_EPS  # how far i moved towards j
                tj = max(-(rx * moved[e, 0, j]) - ry * moved[e, 1, j], _ZERO) + _TOWARDS_EPS
                scale = over / max(d, _MIN_DIST)
                pi, pj = ti / (ti + tj) * scale, tj / (tj + ti) * scale
                xy[e, 0, i] -= rx * pi
                xy[e, 1, i] -= ry * pi
                xy[e, 0, j] += rx * pj
                xy[e, 1, j] += ry * pj


def _steer(xy, pos, vec, length, u, stride, live, created, sep, sep2, crowd_range, sep_half, side, max_stride,
           head_on_tol, wait_for, wait_axis, wait_scale, side_sign, moved, first_jb, best, px, py, vx, vy):
    """Steer every unit this chunk and move it: its displacement goes to ``moved`` [E, 2, U] and
    is added to ``pos`` [E, 2, U]; ``wait_for`` [E, U] and ``wait_axis`` [E, 2, U] (mechanic 6's
    waits) are updated in place; ``wait_scale`` [E, U] scales each wait and ``side_sign`` [E, U]
    (+1 / -1) keeps or swaps each free side (mechanic 9). ``xy``
    [E, 2, U]: the chunk start; ``vec`` [E, 2, U] / ``length``
    [E, U]: where each unit walks, its heading written to ``u`` [E, 2, U]; ``stride`` [E, U]: the
    planned walk. Step by step the rule of ``SimEnv._steer``; ``first_jb`` [U] (int), ``best``,
    ``px``, ``py``, ``vx``, ``vy`` [U] (float32) are scratch."""
    E, U = xy.shape[0], xy.shape[2]
    for e in range(E):
        for i in range(U):
            u[e, 0, i], u[e, 1, i] = vec[e, 0, i] / length[e, i], vec[e, 1, i] / length[e, i]
        # 1. the first unit in each unit's way (relative motion this chunk), as in the tensor code:
        # the smallest tau at which the relative path meets the separation circle. tau is
        # symmetric in i and j: each pair once, in the order that keeps the first index on ties
        for i in range(U):
            best[i], first_jb[i] = _F(np.inf), -1
            px[i], py[i] = xy[e, 0, i], xy[e, 1, i]
            vx[i], vy[i] = u[e, 0, i] * stride[e, i], u[e, 1, i] * stride[e, i]
        for i in range(U):
            if not live[e, i]:
                continue
            for j in range(i + 1, U):
                if not live[e, j]:
                    continue
                rx, ry = px[j] - px[i], py[j] - py[i]
                # out of reach this chunk (the common case): the relative path is at most the two
                # strides long, so it cannot come within the separation distance before tau = 1
                reach = sep[i, j] + stride[e, i] + stride[e, j]
                if rx * rx + ry * ry > reach * reach:
                    continue
                wx, wy = vx[i] - vx[j], vy[i] - vy[j]
                p = rx * wx + ry * wy
                if p < _P_MIN:
                    continue
                w2 = wx * wx + wy * wy
                disc = p * p - (rx * rx + ry * ry - sep2[i, j]) * w2
                if disc < _ZERO:
                    continue
                tau = (p - np.sqrt(max(disc, _DISC_MIN))) / max(w2, _W2_MIN)
                if tau < _ONE:
                    if tau < best[i]:
                        best[i], first_jb[i] = tau, j
                    if tau < best[j]:
                        best[j], first_jb[j] = tau, i
        # 2. each unit's move
        for i in range(U):
            ux, uy, s = u[e, 0, i], u[e, 1, i], stride[e, i]
            jb = first_jb[i]
            budget = max_stride[i] if s > _ZERO else _ZERO
            lateral, sign = _ZERO, _ONE
            if jb >= 0:  # blocked
                bx, by = xy[e, 0, jb], xy[e, 1, jb]
                lat_b = ux * (by - xy[e, 1, i]) - uy * (bx - xy[e, 0, i])  # > 0: it stands on i's left
                mutual = first_jb[jb] == i and stride[e, jb] > _ZERO
                away = _ONE if lat_b < -head_on_tol else -_ONE
                if mutual:
                    sign = away
                else:  # away from i's neighbours of its own side
                    crowd = _ZERO
                    for j in range(U):
                        if j == i or not live[e, j] or crowd_range[i, j] < _ZERO:
                            continue
                        rx, ry = px[j] - px[i], py[j] - py[i]
                        if rx * rx + ry * ry < crowd_range[i, j] * crowd_range[i, j]:
                            crowd += ux * ry - uy * rx
                    sign = -_ONE if crowd > head_on_tol else (_ONE if crowd < -head_on_tol else away)
                    sign *= side_sign[e, i]
                reach_side = -abs(lat_b) if sign == away else abs(lat_b)
                need = (sep_half[jb] + sep_half[i] + reach_side) * (_HALF if mutual else _ONE)
                lateral = min(need, budget)
                # mechanic 6: of two units of one side meeting head-on, the one created first waits
                head_on = ux * u[e, 0, jb] + uy * u[e, 1, jb] < _ZERO
                if mutual and head_on and side[jb] == side[i] and created[e, i] < created[e, jb]:
                    if wait_for[e, i] == i:  # a wait begins: remember i's heading now
                        wait_axis[e, 0, i], wait_axis[e, 1, i] = ux, uy
                    wait_for[e, i] = jb
            forward = min(np.sqrt(max(budget * budget - lateral * lateral, _ZERO)), s)
            w = wait_for[e, i]
            ax, ay = wait_axis[e, 0, i], wait_axis[e, 1, i]
            uu_w = ax * u[e, 0, w] + ay * u[e, 1, w]  # < 0: the unit waited for walks against i's heading
            lead = _ZERO
            if uu_w < _ZERO:
                lead = max(ax * (xy[e, 0, w] - xy[e, 0, i]) + ay * (xy[e, 1, w] - xy[e, 1, i]), _ZERO) * wait_scale[e, i]
            closing = min(stride[e, w] * uu_w, _CLOSING_MAX)
            forward *= max(lead / closing + _ONE, _ZERO)
            lat = lateral * sign
            mx, my = ux * forward - uy * lat, uy * forward + ux * lat
            moved[e, 0, i], moved[e, 1, i] = mx, my
            pos[e, 0, i] += mx
            pos[e, 1, i] += my
