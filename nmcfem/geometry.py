"""Particle geometry with gmsh: Voronoi primary grains in a sphere, wrapped in a thin shell.

Runs on one rank and returns plain NumPy arrays (:class:`ParticleMeshData`); ``nmcfem.mesh``
distributes them. The construction:

1. Voronoi seeds uniform in the core ball (radius R - h), reproducible from a seed.
2. Each Voronoi cell is the intersection of the half-spaces of its Delaunay neighbours (exactly
   the cell of the unbounded diagram), built as an OCC polyhedron, intersected with the core
   ball; one ``fragment`` makes shared faces conformal (planar grain boundaries).
3. gmsh meshes the core with tetrahedra, sized ``boundary_size`` on grain boundaries and the
   surface and ``grain_size`` inside (distance/threshold field). Random Voronoi cells in a ball
   now and then have edges of a few nanometres, or vertices and edges nanometres from the
   sphere, and no mesher makes good tetrahedra there: the seeds of such features are first
   nudged (by a fraction of a grain), and where the worst core tetrahedron still falls below
   ``MIN_CORE_QUALITY`` the core is meshed again, refined around the ends of short curves and
   optimised with Netgen and node relocation.
4. The shell of thickness h is a boundary layer: the core's surface triangles are extruded
   radially into ``shell_layers`` prism layers, each prism split into three tetrahedra. A
   10 nm layer on a 5 um sphere cannot be meshed with isotropic tetrahedra (it would need tens
   of millions), but flat prisms resolve it with a few thousand cells per layer.

gmsh works in micrometres (its default tolerances are absolute, ~1e-8, far too coarse for
metres); coordinates are returned in metres.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.spatial import ConvexHull, Delaunay, HalfspaceIntersection

from nmcfem.config import Geometry
from nmcfem.errors import GeometryError

# Physical tags (cell tags: grains 1..N, shell 0; facet tags below).
SHELL = 0
OUTER_SURFACE = 1
SHELL_CORE = 2
GB_OFFSET = 100

#: gmsh model length unit in metres (micrometres keep OCC's absolute tolerances meaningful)
GMSH_UNIT = 1e-6
#: Voronoi seeds stay inside this fraction of the core radius, so no grain is a thin sliver
#: cut off by the sphere
SEED_RADIUS_FRACTION = 0.92
#: the Voronoi cells are first bounded by a cube of this many radii half-width
BOX_FACTOR = 1.3
#: decimals of the (unit-normal) plane equations when merging coplanar hull triangles into faces
PLANE_DIGITS = 9
#: width of the grading zone of the size field, in units of grain_size
GRADING_WIDTH = 1.5
#: worst core tetrahedron (radius ratio 3 r_in / r_circ) below which the core is meshed again
#: with refinement at short curves and Netgen optimisation, and below which a mesh is reported
MIN_CORE_QUALITY = 0.1
#: random seeds (more than 4) are nudged until no Voronoi vertex lies within, no clipped Voronoi
#: edge is shorter than, and no Voronoi edge grazes the sphere within this fraction of
#: boundary_size
SMALL_FEATURE = 0.02
#: standard deviation of one nudge, in units of the mean seed spacing; most nudge rounds
NUDGE_SIGMA, NUDGE_ROUNDS = 0.05, 200
#: where the remeshed core still has slivers, the seeds of the grains around them are nudged (from
#: the best seeds so far) and the particle built again, at most this many times
QUALITY_ROUNDS = 4
#: remeshing: near a curve shorter than boundary_size / FEATURE_SIZE_FACTOR the element size is
#: FEATURE_SIZE_FACTOR times the curve's length, growing by FEATURE_GRADING per unit distance
#: (measured on 20-100 grains, seeds 1-3: docs/mesh_quality_experiments.md)
FEATURE_SIZE_FACTOR = 4.0
FEATURE_GRADING = 1.0
#: curves shorter than this fraction of boundary_size are degenerate (OCC's sphere poles)
DEGENERATE = 1e-6
#: node-relocation passes after Netgen (plain gmsh optimisation between two relocations) and
#: the iterations of each
RELOCATION_PASSES, RELOCATION_ITERATIONS = ("Relocate3D", "", "Relocate3D"), 5
#: version of the meshing recipe, part of the mesh cache key: bump it when meshes change
MESHER_VERSION = 2


@dataclass
class ParticleMeshData:
    """A particle mesh as plain arrays (SI units), built on one rank.

    Attributes
    ----------
    points: (n,3) vertex coordinates in m.
    tets: (m,4) vertex indices of positively oriented tetrahedra.
    cell_tags: (m,) grain id 1..N, or SHELL (0) for shell cells.
    facets: (f,3) vertex triples of tagged triangles.
    facet_tags: (f,) OUTER_SURFACE, SHELL_CORE or GB_OFFSET + k.
    gb_pairs: (K,2) grain ids (lower first) of grain boundary k.
    grain_seeds: (N,3) Voronoi seed points in m.
    grain_centroids: (N,3) grain centroids in m.
    grain_volumes: (N,) grain volumes in m^3.
    radius: outer radius in m; shell_thickness: h in m.
    stats: mesh statistics (counts, quality, areas in m^2, volumes in m^3, timings in s).
    """

    points: np.ndarray
    tets: np.ndarray
    cell_tags: np.ndarray
    facets: np.ndarray
    facet_tags: np.ndarray
    gb_pairs: np.ndarray
    grain_seeds: np.ndarray
    grain_centroids: np.ndarray
    grain_volumes: np.ndarray
    radius: float
    shell_thickness: float
    stats: dict = field(default_factory=dict)

    def arrays(self) -> dict[str, np.ndarray]:
        """All arrays and scalars, for ``np.savez``."""
        return {k: np.asarray(getattr(self, k)) for k in
                ("points", "tets", "cell_tags", "facets", "facet_tags", "gb_pairs", "grain_seeds",
                 "grain_centroids", "grain_volumes", "radius", "shell_thickness")}

    @classmethod
    def from_arrays(cls, arrays: dict, stats: dict) -> "ParticleMeshData":
        """Rebuild from the arrays of :meth:`arrays` and a stats dict."""
        kw = {k: np.asarray(arrays[k]) for k in arrays}
        kw["radius"] = float(kw["radius"])
        kw["shell_thickness"] = float(kw["shell_thickness"])
        return cls(**kw, stats=dict(stats))


# --- Voronoi seeds and cells -------------------------------------------------------------------

def voronoi_seeds(geom: Geometry) -> np.ndarray:
    """Voronoi seed points (N,3) in m: explicit ``grain_points`` or uniform in the core ball."""
    if geom.grain_points is not None:
        return np.asarray(geom.grain_points, dtype=float).reshape(-1, 3)
    rng = np.random.default_rng(geom.grain_seed)
    r_max = SEED_RADIUS_FRACTION * (geom.radius - geom.shell_thickness)
    # Uniform in the ball: direction uniform on the sphere, radius ~ r_max * U^(1/3).
    direction = rng.normal(size=(geom.n_grains, 3))
    direction /= np.linalg.norm(direction, axis=1)[:, None]
    radius = r_max * rng.uniform(size=geom.n_grains) ** (1.0 / 3.0)
    pts = direction * radius[:, None]
    if geom.n_grains == 1:
        pts[:] = 0.0
    elif geom.n_grains > 4:  # (fewer seeds have no Delaunay triangulation and no tiny features)
        pts = _nudge_seeds(pts, geom.radius - geom.shell_thickness,
                           SMALL_FEATURE * geom.mesh.boundary_size,
                           np.random.default_rng(geom.grain_seed))
    return pts


def _circumcentres(p: np.ndarray) -> np.ndarray:
    """Circumcentres (m,3) of tetrahedra given as vertex coordinates (m,4,3)."""
    a = p[:, 1:] - p[:, :1]
    rhs = 0.5 * np.einsum("mij,mij->mi", a, a)
    return p[:, 0] + np.linalg.solve(a, rhs[..., None])[..., 0]


def small_voronoi_features(seeds: np.ndarray, core_radius: float, tol: float
                           ) -> list[np.ndarray]:
    """Seed ids of every Voronoi feature that leaves a curve or a sliver below ``tol`` in the
    cells clipped by the core sphere: a Voronoi vertex within tol of the sphere, a Voronoi edge
    whose part inside the ball is shorter than tol, an edge (or unbounded ray) passing within tol
    of the sphere.

    Parameters
    ----------
    seeds: (N,3) seed points, N > 4 (any length unit); core_radius, tol: same unit.
    """
    tri = Delaunay(seeds)
    simp, nb = tri.simplices, tri.neighbors
    centre = _circumcentres(seeds[simp])  # the Voronoi vertices
    bad = [simp[t] for t in np.nonzero(np.abs(np.linalg.norm(centre, axis=1) - core_radius)
                                       < tol)[0]]
    # Voronoi edges: between the vertices of adjacent Delaunay tetrahedra (shared by the seeds
    # of both), and rays outwards from the vertex of a tetrahedron on the hull
    t_idx, k_idx = np.nonzero(nb >= 0)
    other = nb[t_idx, k_idx]
    once = t_idx < other
    t_idx, other = t_idx[once], other[once]
    edges = [(centre[t_idx], centre[other],
              [np.union1d(simp[a], simp[b]) for a, b in zip(t_idx, other)])]
    t_idx, k_idx = np.nonzero(nb < 0)
    if len(t_idx):
        face = np.array([np.delete(simp[t], k) for t, k in zip(t_idx, k_idx)])
        p = seeds[face]
        n = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
        n /= np.linalg.norm(n, axis=1)[:, None]
        n *= np.sign(np.einsum("ij,ij->i", n, p[:, 0] - seeds[simp[t_idx, k_idx]]))[:, None]
        edges.append((centre[t_idx], centre[t_idx] + 10 * core_radius * n,
                      [simp[t] for t in t_idx]))
    for start, end, ids in edges:
        d = end - start
        length = np.linalg.norm(d, axis=1)
        u = d / np.maximum(length, 1e-300)[:, None]
        b = np.einsum("ij,ij->i", start, u)
        disc = b * b - (np.einsum("ij,ij->i", start, start) - core_radius ** 2)
        root = np.sqrt(np.clip(disc, 0, None))
        chord = np.where(disc > 0, np.clip(-b + root, 0, length) - np.clip(-b - root, 0, length),
                         0.0)
        closest_inside = (-b > 0) & (-b < length)  # the point nearest the centre is on the edge
        depth = np.where(closest_inside,
                         core_radius - np.linalg.norm(start - b[:, None] * u, axis=1), np.inf)
        bad.extend(ids[k] for k in np.nonzero(((chord > 0) & (chord < tol))
                                              | (np.abs(depth) < tol))[0])
    return bad


def _nudge(pts: np.ndarray, ids, core_radius: float, rng: np.random.Generator) -> np.ndarray:
    """``pts`` with the seeds ``ids`` moved by a random step of NUDGE_SIGMA seed spacings
    (kept inside SEED_RADIUS_FRACTION of the core radius, m)."""
    pts = pts.copy()
    sigma = NUDGE_SIGMA * core_radius * (4 * np.pi / 3 / len(pts)) ** (1 / 3)
    r_max = SEED_RADIUS_FRACTION * core_radius
    for i in ids:
        new = pts[i] + sigma * rng.normal(size=3)
        pts[i] = new * min(1.0, r_max / np.linalg.norm(new))
    return pts


def _grains_at(tets: np.ndarray, tags: np.ndarray, slivers: np.ndarray) -> np.ndarray:
    """Grain ids (0-based) of every core tetrahedron (vertex ids ``tets``, grain ``tags``) that
    shares a vertex with one of the tetrahedra masked by ``slivers``."""
    bad = np.unique(tets[slivers])
    return np.unique(tags[np.isin(tets, bad).any(axis=1)]) - 1


def _nudge_seeds(pts: np.ndarray, core_radius: float, tol: float,
                 rng: np.random.Generator) -> np.ndarray:
    """Move one seed of every feature below ``tol`` by a small random step, until none is left.

    100 grains: 15-20 of the seeds move, by at most ~0.3 um; most 20-grain particles keep theirs.

    Parameters
    ----------
    pts: (N,3) seeds in m; core_radius, tol: in m.
    rng: the nudges' random stream (its own, so that the seeds do not depend on the nudges).
    """
    for _ in range(NUDGE_ROUNDS):
        bad = small_voronoi_features(pts, core_radius, tol)
        if not bad:
            return pts
        moved: set[int] = set()
        for ids in bad:
            if not moved & set(ids.tolist()):
                i = int(rng.choice(ids))
                moved.add(i)
                pts = _nudge(pts, [i], core_radius, rng)
    raise GeometryError(f"could not move the Voronoi seeds clear of features below {tol:.3g} m "
                        f"in {NUDGE_ROUNDS} rounds: try another geometry.grain_seed")


def _neighbours(seeds: np.ndarray) -> list[np.ndarray]:
    n = len(seeds)
    if n <= 4:  # too few points for a 3D Delaunay triangulation: every pair is a candidate
        return [np.array([j for j in range(n) if j != i], dtype=int) for i in range(n)]
    tri = Delaunay(seeds)
    indptr, indices = tri.vertex_neighbor_vertices
    return [indices[indptr[i]:indptr[i + 1]] for i in range(n)]


def voronoi_cells(seeds: np.ndarray, half_width: float) -> list[tuple[np.ndarray, list]]:
    """Convex Voronoi cells bounded by a cube, as (vertices, [(normal, vertex ids), ...]).

    Parameters
    ----------
    seeds: (N,3) seed points (any length unit).
    half_width: half-width of the bounding cube (same unit).
    """
    cells = []
    for i, nbrs in enumerate(_neighbours(seeds)):
        planes = []
        for j in nbrs:
            normal = seeds[j] - seeds[i]
            planes.append(np.r_[normal, -normal @ (0.5 * (seeds[i] + seeds[j]))])
        for k in range(3):
            e = np.eye(3)[k]
            planes += [np.r_[e, -half_width], np.r_[-e, -half_width]]
        verts = HalfspaceIntersection(np.array(planes), seeds[i]).intersections
        hull = ConvexHull(verts)
        faces: dict[tuple, set] = {}
        for simplex, eq in zip(hull.simplices, hull.equations):
            faces.setdefault(tuple(np.round(eq, PLANE_DIGITS)), set()).update(simplex.tolist())
        cells.append((verts, [(np.array(k[:3]), sorted(f)) for k, f in faces.items()]))
    return cells


def _ordered_polygon(verts: np.ndarray, ids: list[int], normal: np.ndarray) -> list[int]:
    pts = verts[ids]
    centre = pts.mean(axis=0)
    u = pts[0] - centre
    u /= np.linalg.norm(u)
    w = np.cross(normal, u)
    angle = np.arctan2((pts - centre) @ w, (pts - centre) @ u)
    return [ids[k] for k in np.argsort(angle)]


# --- gmsh model --------------------------------------------------------------------------------

def _add_polyhedron(occ, verts: np.ndarray, faces: list) -> int:
    point_tags = [occ.addPoint(*v) for v in verts]
    lines: dict[tuple[int, int], int] = {}
    surfaces = []
    for normal, ids in faces:
        loop = _ordered_polygon(verts, ids, normal)
        curve = []
        for a, b in zip(loop, loop[1:] + loop[:1]):
            key = (min(a, b), max(a, b))
            if key not in lines:
                lines[key] = occ.addLine(point_tags[key[0]], point_tags[key[1]])
            curve.append(lines[key] if a == key[0] else -lines[key])
        surfaces.append(occ.addPlaneSurface([occ.addCurveLoop(curve)]))
    return occ.addVolume([occ.addSurfaceLoop(surfaces)])


def _build_core_model(gmsh, seeds_u: np.ndarray, core_radius_u: float) -> dict[int, int]:
    """Grains as OCC volumes (units of GMSH_UNIT); returns volume tag -> grain id (1..N)."""
    occ = gmsh.model.occ
    n = len(seeds_u)
    if n == 1:
        vol = occ.addSphere(0, 0, 0, core_radius_u)
        occ.synchronize()
        return {vol: 1}
    cells = voronoi_cells(seeds_u, BOX_FACTOR * core_radius_u)
    volumes = [_add_polyhedron(occ, v, f) for v, f in cells]
    ball = occ.addSphere(0, 0, 0, core_radius_u)
    pieces, _ = occ.intersect([(3, v) for v in volumes], [(3, ball)])
    pieces, _ = occ.fragment(pieces, [])
    occ.synchronize()
    mapping = {}
    for dim, tag in pieces:
        centre = np.array(occ.getCenterOfMass(dim, tag))
        mapping[tag] = int(np.argmin(np.linalg.norm(seeds_u - centre, axis=1))) + 1
    if sorted(mapping.values()) != list(range(1, n + 1)):
        raise GeometryError(f"the Voronoi partition of geometry.n_grains = {n} grains did not give "
                            f"one convex piece per grain: try another geometry.grain_seed")
    return mapping


def _mesh_core(gmsh, geom: Geometry, grain_of_volume: dict[int, int], repair: bool) -> tuple:
    """Mesh the core model with tetrahedra and return :func:`_extract_core`'s arrays;
    ``repair``: refined at the ends of short curves and optimised with Netgen and node
    relocation (the second attempt where the first has slivers)."""
    model = gmsh.model
    model.mesh.clear()
    surfaces = [t for _, t in model.getEntities(2)]
    fld = model.mesh.field
    for tag in fld.list():
        fld.remove(tag)
    dist = fld.add("Distance")
    fld.setNumbers(dist, "SurfacesList", surfaces)
    fld.setNumber(dist, "Sampling", 20)
    thr = fld.add("Threshold")
    lb, lg = geom.mesh.boundary_size / GMSH_UNIT, geom.mesh.grain_size / GMSH_UNIT
    fld.setNumber(thr, "InField", dist)
    fld.setNumber(thr, "SizeMin", lb)
    fld.setNumber(thr, "SizeMax", lg)
    fld.setNumber(thr, "DistMin", 0.5 * lb)
    fld.setNumber(thr, "DistMax", 0.5 * lb + GRADING_WIDTH * lg)
    fld.setAsBackgroundMesh(_short_curve_refinement(gmsh, thr, lb) if repair else thr)
    netgen = repair and geom.mesh.optimize
    for name, value in (("Mesh.MeshSizeExtendFromBoundary", 0), ("Mesh.MeshSizeFromPoints", 0),
                        ("Mesh.MeshSizeFromCurvature", 0), ("Mesh.Algorithm", 6),
                        ("Mesh.Algorithm3D", 1), ("Mesh.Optimize", int(geom.mesh.optimize)),
                        ("Mesh.OptimizeNetgen", int(netgen)), ("Mesh.ElementOrder", 1)):
        gmsh.option.setNumber(name, value)
    try:
        model.mesh.generate(3)
        if netgen:  # Netgen leaves a few slivers whose nodes are interior: move those
            for method in RELOCATION_PASSES:
                model.mesh.optimize(method, niter=RELOCATION_ITERATIONS)
    except Exception as exc:  # gmsh raises plain Exceptions with its log text
        raise GeometryError(f"gmsh could not mesh the particle ({exc}); try another "
                            f"geometry.grain_seed or a larger geometry.mesh.boundary_size") \
            from None
    return _extract_core(gmsh, grain_of_volume)


def _short_curve_refinement(gmsh, background: int, lb: float) -> int:
    """A size field: the ``background`` field, refined around the end points of curves shorter
    than lb / FEATURE_SIZE_FACTOR (one distance/threshold pair per factor-2 class of lengths),
    so that their triangles are not needles; returns its tag. lb: boundary size (gmsh units)."""
    model = gmsh.model
    fld = model.mesh.field
    classes: dict[int, set[int]] = {}
    for _, curve in model.getEntities(1):
        length = model.occ.getMass(1, curve)
        # (OCC's sphere has degenerate, zero-length curves at its poles: not features)
        if DEGENERATE * lb < length < lb / FEATURE_SIZE_FACTOR:
            ends = model.getBoundary([(1, curve)], combined=False, oriented=False)
            classes.setdefault(int(np.floor(np.log2(FEATURE_SIZE_FACTOR * length))),
                               set()).update(t for _, t in ends)
    fields = [background]
    for k, points in sorted(classes.items()):
        size = 2.0 ** k
        dist = fld.add("Distance")
        fld.setNumbers(dist, "PointsList", sorted(points))
        thr = fld.add("Threshold")
        fld.setNumber(thr, "InField", dist)
        fld.setNumber(thr, "SizeMin", size)
        fld.setNumber(thr, "SizeMax", lb)
        fld.setNumber(thr, "DistMin", size)
        fld.setNumber(thr, "DistMax", size + (lb - size) / FEATURE_GRADING)
        fields.append(thr)
    smallest = fld.add("Min")
    fld.setNumbers(smallest, "FieldsList", fields)
    return smallest


def _extract_core(gmsh, grain_of_volume: dict[int, int]) -> tuple:
    """Nodes (m), tets and grain tags, GB triangles with pairs, and surface triangles."""
    model = gmsh.model
    node_tags, coords, _ = model.mesh.getNodes()
    index = np.zeros(int(node_tags.max()) + 1, dtype=np.int64)
    index[node_tags.astype(np.int64)] = np.arange(len(node_tags))
    points = coords.reshape(-1, 3) * GMSH_UNIT
    tets, tags = [], []
    for vol, grain in grain_of_volume.items():
        etypes, _, enodes = model.mesh.getElements(3, vol)
        for et, nodes in zip(etypes, enodes):
            if et != 4:  # 4 = 4-node tetrahedron
                raise GeometryError("gmsh produced non-tetrahedral cells (element type "
                                    f"{et}): nmcfem needs linear tetrahedra")
            t = index[nodes.astype(np.int64)].reshape(-1, 4)
            tets.append(t)
            tags.append(np.full(len(t), grain, dtype=np.int32))
    pair_faces: dict[tuple[int, int], list[np.ndarray]] = {}
    surface = []
    for _, s in model.getEntities(2):
        up, _ = model.getAdjacencies(2, s)
        etypes, _, enodes = model.mesh.getElements(2, s)
        tris = np.concatenate([index[n.astype(np.int64)].reshape(-1, 3)
                               for et, n in zip(etypes, enodes) if et == 2])
        if len(up) == 2:
            a, b = sorted(grain_of_volume[int(v)] for v in up)
            pair_faces.setdefault((a, b), []).append(tris)
        else:
            surface.append(tris)
    return (points, np.concatenate(tets), np.concatenate(tags), pair_faces,
            np.concatenate(surface) if surface else np.zeros((0, 3), dtype=np.int64))


# --- Shell as a boundary layer -----------------------------------------------------------------

def split_prisms(bottom: np.ndarray, top: np.ndarray) -> np.ndarray:
    """Split prisms (bottom triangle, top triangle) into three tetrahedra each, conformally.

    With each triangle's vertices sorted by global index a < b < c, the tetrahedra
    (a,b,c,a'), (b,c,a',b'), (c,a',b',c') cut every side quad along the diagonal from the top of
    its lower-index vertex to the bottom of its higher-index vertex. That choice depends only on
    the quad's own two vertical edges, so the prisms on both sides of a quad agree: the split is
    conformal across the whole layer.

    Parameters
    ----------
    bottom: (p,3) bottom vertex ids; top: (p,3) top vertex ids (top[i,k] above bottom[i,k]).
    """
    order = np.argsort(bottom, axis=1)
    b = np.take_along_axis(bottom, order, axis=1)
    t = np.take_along_axis(top, order, axis=1)
    return np.concatenate([
        np.stack([b[:, 0], b[:, 1], b[:, 2], t[:, 0]], axis=1),
        np.stack([b[:, 1], b[:, 2], t[:, 0], t[:, 1]], axis=1),
        np.stack([b[:, 2], t[:, 0], t[:, 1], t[:, 2]], axis=1)])


def _add_shell(points: np.ndarray, surface: np.ndarray, geom: Geometry
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Extrude covered core-surface triangles radially into shell prism layers.

    Returns new points, shell tets, covered core-surface triangles (the shell/core interface)
    and the shell's outermost triangles.
    """
    h, layers = geom.shell_thickness, geom.mesh.shell_layers
    core_radius = geom.radius - h
    centroid = points[surface].mean(axis=1)
    polar = np.degrees(np.arccos(np.clip(centroid[:, 2] / np.linalg.norm(centroid, axis=1), -1, 1)))
    covered = surface[polar <= geom.shell_cap_angle]
    base = np.unique(covered)
    unit = points[base] / np.linalg.norm(points[base], axis=1)[:, None]
    new_points = [points]
    level = {0: np.arange(len(points))}
    next_id = len(points)
    for k in range(1, layers + 1):
        ids = np.full(len(points), -1, dtype=np.int64)
        ids[base] = next_id + np.arange(len(base))
        next_id += len(base)
        new_points.append(unit * (core_radius + k * h / layers))
        level[k] = ids
    tets = [split_prisms(level[k - 1][covered], level[k][covered]) for k in range(1, layers + 1)]
    return (np.concatenate(new_points), np.concatenate(tets), covered, level[layers][covered])


# --- Topology helpers --------------------------------------------------------------------------

def orient_positive(points: np.ndarray, tets: np.ndarray) -> np.ndarray:
    """Return ``tets`` with two vertices swapped wherever the signed volume is negative."""
    p = points[tets]
    vol = np.einsum("ij,ij->i", np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), p[:, 3] - p[:, 0])
    tets = tets.copy()
    neg = vol < 0
    tets[neg, 0], tets[neg, 1] = tets[neg, 1], tets[neg, 0].copy()
    return tets


def tet_volumes(points: np.ndarray, tets: np.ndarray) -> np.ndarray:
    """Volumes (m^3) of tetrahedra."""
    p = points[tets]
    return np.abs(np.einsum("ij,ij->i", np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]),
                            p[:, 3] - p[:, 0])) / 6.0


def triangle_areas(points: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """Areas (m^2) of triangles."""
    p = points[tris]
    return 0.5 * np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1)


def tet_faces(tets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All faces (4m,3) of the tetrahedra as sorted vertex triples, and the cell of each."""
    tets = np.asarray(tets)
    faces = np.sort(np.concatenate([tets[:, [1, 2, 3]], tets[:, [0, 2, 3]], tets[:, [0, 1, 3]],
                                    tets[:, [0, 1, 2]]]), axis=1)
    return faces, np.tile(np.arange(len(tets)), 4)


def boundary_faces(tets: np.ndarray) -> np.ndarray:
    """Triangles (sorted vertex ids) that belong to exactly one tetrahedron."""
    faces, _ = tet_faces(tets)
    uniq, counts = np.unique(faces, axis=0, return_counts=True)
    return uniq[counts == 1]


def radius_ratio_quality(points: np.ndarray, tets: np.ndarray) -> np.ndarray:
    """Normalised radius ratio 3 r_in / r_circ of tetrahedra (1 regular, 0 degenerate)."""
    p = points[tets]
    vol = tet_volumes(points, tets)
    faces = [(1, 2, 3), (0, 2, 3), (0, 1, 3), (0, 1, 2)]
    area = sum(0.5 * np.linalg.norm(np.cross(p[:, j] - p[:, i], p[:, k] - p[:, i]), axis=1)
               for i, j, k in faces)
    r_in = 3.0 * vol / area
    # circumradius from the edge lengths: R = sqrt((aA+bB+cC)(aA+bB-cC)(aA-bB+cC)(-aA+bB+cC))/(24V)
    a = np.linalg.norm(p[:, 0] - p[:, 1], axis=1) * np.linalg.norm(p[:, 2] - p[:, 3], axis=1)
    b = np.linalg.norm(p[:, 0] - p[:, 2], axis=1) * np.linalg.norm(p[:, 1] - p[:, 3], axis=1)
    c = np.linalg.norm(p[:, 0] - p[:, 3], axis=1) * np.linalg.norm(p[:, 1] - p[:, 2], axis=1)
    prod = np.clip((a + b + c) * (a + b - c) * (a - b + c) * (-a + b + c), 0, None)
    r_circ = np.sqrt(prod) / (24.0 * np.maximum(vol, 1e-300))
    return 3.0 * r_in / np.maximum(r_circ, 1e-300)


# --- Assembly ----------------------------------------------------------------------------------

def build_particle(geom: Geometry) -> ParticleMeshData:
    """Build the particle mesh for ``geom`` with gmsh (call on one rank).

    Parameters
    ----------
    geom: geometry section (radius m, n_grains, seeds, shell thickness m, mesh sizes m).
    """
    import gmsh

    t0 = time.perf_counter()
    core_radius = geom.radius - geom.shell_thickness
    seeds = voronoi_seeds(geom)
    if np.any(np.linalg.norm(seeds, axis=1) >= core_radius):
        raise GeometryError("geometry.grain_points: every seed must lie inside the core "
                            "(radius - shell_thickness)")
    nudge = geom.grain_points is None and geom.n_grains > 4
    rng = np.random.default_rng([geom.grain_seed, 1])  # the re-nudges' own stream
    gmsh.initialize(["-noenv"], readConfigFiles=False)
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.option.setNumber("General.NumThreads", 1)  # reproducible meshes
        # (worst quality, seeds, core arrays, GB area m^2, remeshed, round, cell qualities)
        best = None
        for round_ in range(QUALITY_ROUNDS + 1):
            if round_:  # slivers left: move the grains around them, from the best seeds so far
                around = _grains_at(best[2][1], best[2][2], best[6] < MIN_CORE_QUALITY)
                seeds = _nudge(best[1], around, core_radius, rng)
                seeds = _nudge_seeds(seeds, core_radius, SMALL_FEATURE * geom.mesh.boundary_size,
                                     rng)
            gmsh.clear()
            gmsh.model.add("particle")
            grain_of_volume = _build_core_model(gmsh, seeds / GMSH_UNIT,
                                                core_radius / GMSH_UNIT)
            t_model = time.perf_counter()
            for repair in (False, True):
                core = _mesh_core(gmsh, geom, grain_of_volume, repair)
                quality = radius_ratio_quality(core[0], core[1])
                worst = quality.min()
                if worst >= MIN_CORE_QUALITY:
                    break
            if best is None or worst > best[0]:
                gb_area = sum(gmsh.model.occ.getMass(2, t) for _, t in gmsh.model.getEntities(2)
                              if len(gmsh.model.getAdjacencies(2, t)[0]) == 2) * GMSH_UNIT ** 2
                best = (worst, seeds, core, gb_area, repair, round_, quality)
            if worst >= MIN_CORE_QUALITY or not nudge:
                break
        _, seeds, core, occ_gb_area, repair, round_, _ = best
        points, tets, tags, pair_faces, surface = core
    finally:
        gmsh.finalize()
    t_mesh = time.perf_counter()

    gb_pairs = np.array(sorted(pair_faces), dtype=np.int32).reshape(-1, 2)
    facets = [np.concatenate(pair_faces[tuple(p)]) for p in gb_pairs]
    facet_tags = [np.full(len(f), GB_OFFSET + k, dtype=np.int32) for k, f in enumerate(facets)]
    if geom.shell_thickness > 0:
        points, shell_tets, covered, top = _add_shell(points, surface, geom)
        tets = np.concatenate([tets, shell_tets])
        tags = np.concatenate([tags, np.full(len(shell_tets), SHELL, dtype=np.int32)])
        facets.append(covered)
        facet_tags.append(np.full(len(covered), SHELL_CORE, dtype=np.int32))
    # Drop vertices gmsh kept for geometry only (e.g. OCC construction points).
    used = np.unique(tets)
    renumber = np.full(len(points), -1, dtype=np.int64)
    renumber[used] = np.arange(len(used))
    points = points[used]
    tets = orient_positive(points, renumber[tets])
    facets = [renumber[f] for f in facets]
    outer = boundary_faces(tets)
    facets.append(outer)
    facet_tags.append(np.full(len(outer), OUTER_SURFACE, dtype=np.int32))
    facets_all = np.concatenate(facets).astype(np.int64)
    facet_tags_all = np.concatenate(facet_tags)

    vol = tet_volumes(points, tets)
    n = len(seeds)
    grain_volumes = np.array([vol[tags == g].sum() for g in range(1, n + 1)])
    cell_centres = points[tets].mean(axis=1)
    grain_centroids = np.array([(cell_centres[tags == g] * vol[tags == g, None]).sum(axis=0)
                                / grain_volumes[g - 1] for g in range(1, n + 1)])
    quality = radius_ratio_quality(points, tets)
    core_quality = quality[tags != SHELL]
    gb_area = float(triangle_areas(points, facets_all[facet_tags_all >= GB_OFFSET]).sum())
    stats = {
        "n_grains": int(n),
        "n_grain_boundaries": int(len(gb_pairs)),
        "n_cells": int(len(tets)),
        "n_shell_cells": int(np.sum(tags == SHELL)),
        "n_vertices": int(len(points)),
        "quality_min_core": float(core_quality.min()),
        "quality_mean_core": float(core_quality.mean()),
        "quality_min": float(quality.min()),
        "quality_measure": ("normalised radius ratio 3 r_in/r_circ (shell prisms are flat by "
                            "design)"),
        "particle_volume [m^3]": float(vol.sum()),
        "core_volume [m^3]": float(vol[tags != SHELL].sum()),
        "shell_volume [m^3]": float(vol[tags == SHELL].sum()),
        "grain_boundary_area [m^2]": gb_area,
        "grain_boundary_area_geometry [m^2]": float(occ_gb_area),
        "outer_area [m^2]": float(triangle_areas(points, outer).sum()),
        "shell_core_area [m^2]": float(triangle_areas(
            points, facets_all[facet_tags_all == SHELL_CORE]).sum()),
        "remeshed_for_quality": bool(repair),
        "seed_renudges": int(round_),
        "mesher_version": MESHER_VERSION,
        "time_model [s]": t_model - t0,
        "time_mesh [s]": t_mesh - t_model,
    }
    return ParticleMeshData(points=points, tets=tets.astype(np.int64), cell_tags=tags,
                            facets=facets_all, facet_tags=facet_tags_all, gb_pairs=gb_pairs,
                            grain_seeds=seeds, grain_centroids=grain_centroids,
                            grain_volumes=grain_volumes, radius=float(geom.radius),
                            shell_thickness=float(geom.shell_thickness), stats=stats)


def write_msh(data: ParticleMeshData, path: str | Path) -> None:
    """Write the mesh with cell and facet tags as a gmsh ``.msh`` file (via meshio).

    Parameters
    ----------
    data: particle mesh.
    path: destination ``.msh`` file.
    """
    import meshio

    cells = [("tetra", data.tets), ("triangle", data.facets)]
    tags = [data.cell_tags.astype(np.int32), data.facet_tags.astype(np.int32)]
    # physical group names, as gmsh shows them: grain_7, shell, outer_surface, gb_3_7, ...
    names = {f"grain_{g}": np.array([g, 3]) for g in np.unique(data.cell_tags) if g != SHELL}
    if np.any(data.cell_tags == SHELL):
        names["shell"] = np.array([SHELL, 3])
    names["outer_surface"] = np.array([OUTER_SURFACE, 2])
    if np.any(data.facet_tags == SHELL_CORE):
        names["shell_core_interface"] = np.array([SHELL_CORE, 2])
    for k, (a, b) in enumerate(data.gb_pairs):
        names[f"gb_{a}_{b}"] = np.array([GB_OFFSET + k, 2])
    mesh = meshio.Mesh(data.points, cells,
                       cell_data={"gmsh:physical": tags, "gmsh:geometrical": tags},
                       field_data=names)
    meshio.write(str(path), mesh, file_format="gmsh22", binary=True)
