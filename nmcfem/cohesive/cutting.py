"""Duplicated-vertex meshes for cohesive interfaces (DESIGN.md section 5, option 1).

Every region (a grain or the shell) receives its own copy of each vertex it shares with another
region across an *active* interface, so a continuous P1 space on the new mesh is continuous
inside regions and free to jump across active interfaces. Each interface triangle is returned
as a pair of vertex triples on its two sides ("+" = the region with the lower id, so the pairing
is deterministic), with its unit normal pointing from "-" into "+" and its area. Works on the raw
arrays of :class:`nmcfem.geometry.ParticleMeshData` (one rank, NumPy only).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nmcfem.geometry import GB_OFFSET, OUTER_SURFACE, SHELL, SHELL_CORE, ParticleMeshData, tet_faces


@dataclass
class InterfaceMesh:
    """A mesh whose active interfaces are cut open, with the pairs of facing triangles.

    Attributes
    ----------
    points: (n,3) vertex coordinates in m (copies share coordinates).
    tets: (m,4) cells on the new vertex numbering (same order as the input cells).
    original_vertex: (n,) input vertex of every new vertex.
    plus, minus: (k,3) vertex triples of the two faces of each interface triangle, with
        plus[i, j] and minus[i, j] at the same position.
    plus_region, minus_region: (k,) region ids (cell tags) of the two sides; plus < minus.
    facet_tag: (k,) the triangle's facet tag (SHELL_CORE or GB_OFFSET + k).
    normal: (k,3) unit normals pointing from the minus side into the plus side.
    area: (k,) triangle areas in m^2.
    touches_surface: (k,) whether the triangle has a vertex on the outer surface (set by
        :func:`cut_particle`): a crack there is open to the electrolyte.
    touches_shell: (k,) whether a grain-boundary triangle has a vertex on the shell/core
        interface (set by :func:`cut_particle`): where the thin shell breaks over a crack, the
        crack there is open to the electrolyte.
    """

    points: np.ndarray
    tets: np.ndarray
    original_vertex: np.ndarray
    plus: np.ndarray
    minus: np.ndarray
    plus_region: np.ndarray
    minus_region: np.ndarray
    facet_tag: np.ndarray
    normal: np.ndarray
    area: np.ndarray
    touches_surface: np.ndarray | None = None
    touches_shell: np.ndarray | None = None


def active_interface_mask(facet_tags: np.ndarray, grain_boundaries: bool, shell_core: bool
                          ) -> np.ndarray:
    """Which tagged triangles are cohesive interfaces for the given family switches."""
    gb = facet_tags >= GB_OFFSET
    sc = facet_tags == SHELL_CORE
    return (gb & grain_boundaries) | (sc & shell_core)


def split_interfaces(data: ParticleMeshData, grain_boundaries: bool = True,
                     shell_core: bool = True) -> InterfaceMesh:
    """Cut the mesh open along the active interface families.

    Parameters
    ----------
    data: raw particle mesh (points in m, tets, cell tags, tagged facets).
    grain_boundaries: open every grain boundary.
    shell_core: open the shell/core interface.
    """
    tets = np.asarray(data.tets, dtype=np.int64)
    region = np.asarray(data.cell_tags, dtype=np.int64)
    active = active_interface_mask(data.facet_tags, grain_boundaries, shell_core)
    faces = np.sort(np.asarray(data.facets, dtype=np.int64)[active], axis=1)
    tags = np.asarray(data.facet_tags)[active]
    cut_vertices = np.unique(faces)

    # A vertex on an open interface gets one copy per region around it (regions are convex
    # Voronoi pieces or the shell layer, so one region's cells around a vertex are connected),
    # except that regions joined through an intact (inactive) interface at that vertex share a
    # copy: an intact shell pins the crack faces of the grain boundaries it covers.
    corner_vertex = tets.reshape(-1)
    corner_region = np.repeat(region, 4)
    on_cut = np.isin(corner_vertex, cut_vertices)
    keys = np.stack([corner_vertex[on_cut], corner_region[on_cut]], axis=1)
    uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
    base = region.max() + 2
    code = uniq[:, 0] * base + uniq[:, 1]
    parent = np.arange(len(uniq))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    inactive = np.sort(np.asarray(data.facets, dtype=np.int64)[~active], axis=1)
    inactive_tags = np.asarray(data.facet_tags)[~active]
    interior = (inactive_tags >= GB_OFFSET) | (inactive_tags == SHELL_CORE)
    pins = inactive[interior]
    if len(pins):
        sides = _sides(tets, region, pins, len(data.points))
        for tri, (ra, rb) in zip(pins, sides):
            for v in tri:
                if ra != rb and np.isin(v, cut_vertices):
                    ia = int(np.searchsorted(code, v * base + ra))
                    ib = int(np.searchsorted(code, v * base + rb))
                    parent[find(ia)] = find(ib)
    roots = np.array([find(i) for i in range(len(uniq))], dtype=np.int64)
    # the first copy of each vertex keeps its number; further copies are appended
    root_ids = np.unique(roots)
    root_vertex = uniq[root_ids, 0]
    keeps = np.ones(len(root_vertex), dtype=bool)
    keeps[1:] = root_vertex[1:] != root_vertex[:-1]
    n = len(data.points)
    id_of_root = np.where(keeps, root_vertex, n + np.cumsum(~keeps) - 1)
    new_ids = id_of_root[np.searchsorted(root_ids, roots)]
    new_corner = corner_vertex.copy()
    new_corner[on_cut] = new_ids[inverse.reshape(-1)]
    original = np.concatenate([np.arange(n), root_vertex[~keeps]])
    points = np.asarray(data.points)[original]

    def copy_of(vertices: np.ndarray, regions: np.ndarray) -> np.ndarray:
        return new_ids[np.searchsorted(code, vertices * base + regions)]

    # the two regions on the sides of every active triangle, from the cells that hold it
    side_cells = _side_cells(tets, faces, n)
    side_a, side_b = region[side_cells[:, 0]], region[side_cells[:, 1]]
    plus_region, minus_region = np.minimum(side_a, side_b), np.maximum(side_a, side_b)
    reg_plus = np.repeat(plus_region, 3)
    reg_minus = np.repeat(minus_region, 3)
    plus = copy_of(faces.reshape(-1), reg_plus).reshape(-1, 3)
    minus = copy_of(faces.reshape(-1), reg_minus).reshape(-1, 3)

    p = points[plus]
    normal = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    area = 0.5 * np.linalg.norm(normal, axis=1)
    normal /= (2.0 * area)[:, None]
    # orient from the minus region into the plus region: towards the plus side's cell centre
    plus_cell = np.where(side_a == plus_region, side_cells[:, 0], side_cells[:, 1])
    centre = np.asarray(data.points)[tets[plus_cell]].mean(axis=1)
    flip = np.einsum("ij,ij->i", centre - p.mean(axis=1), normal) < 0
    normal[flip] *= -1.0
    return InterfaceMesh(points=points, tets=new_corner.reshape(-1, 4), original_vertex=original,
                         plus=plus, minus=minus, plus_region=plus_region,
                         minus_region=minus_region, facet_tag=tags, normal=normal, area=area)


def _side_cells(tets: np.ndarray, tris: np.ndarray, n: int) -> np.ndarray:
    """(k,2) the two cells that hold each interior triangle (sorted vertex triples)."""
    cells = _holders(tets, tris, n)
    if np.any(cells[:, 0] == cells[:, 1]):
        raise ValueError("an interface triangle is not shared by two cells: the mesh is not "
                         "conformal along its interfaces")
    return cells


def _sides(tets: np.ndarray, region: np.ndarray, tris: np.ndarray, n: int) -> np.ndarray:
    """(k,2) regions on the two sides of each interior triangle."""
    cells = _side_cells(tets, tris, n)
    return region[cells]


def _encode(tris: np.ndarray, n: int) -> np.ndarray:
    """One integer per sorted vertex triple (n vertices), for searching."""
    tris = np.asarray(tris, dtype=np.int64)
    return (tris[:, 0] * n + tris[:, 1]) * n + tris[:, 2]


@dataclass
class CutParticle:
    """A particle mesh cut open along its cohesive interfaces, ready to distribute.

    Attributes
    ----------
    points, tets, cell_tags: the cut mesh (m; cells in the input order, so cell tags carry over).
    facets, facet_tags: tagged triangles on the cut numbering: the outer surface, intact
        interfaces, and the core-side faces of an open shell/core interface (tag SHELL_CORE,
        now boundary facets) so that the Li fraction under the shell stays measurable.
    interfaces: the pairs of facing triangles (:class:`InterfaceMesh`).
    """

    points: np.ndarray
    tets: np.ndarray
    cell_tags: np.ndarray
    facets: np.ndarray
    facet_tags: np.ndarray
    interfaces: InterfaceMesh


def cut_particle(data: ParticleMeshData, grain_boundaries: bool, shell_core: bool) -> CutParticle:
    """Cut ``data`` open along the active interface families and carry its facet tags over.

    Parameters
    ----------
    data: raw particle mesh (m).
    grain_boundaries, shell_core: which interface families become cohesive.
    """
    cut = split_interfaces(data, grain_boundaries, shell_core)
    tets = np.asarray(data.tets, dtype=np.int64)
    region = np.asarray(data.cell_tags, dtype=np.int64)
    active = active_interface_mask(data.facet_tags, grain_boundaries, shell_core)
    facets = np.asarray(data.facets, dtype=np.int64)
    tags = np.asarray(data.facet_tags)
    keep = ~active | (tags == SHELL_CORE)
    facets, tags = facets[keep], tags[keep]
    # the cell each kept triangle is read from: any holder, except that an open shell/core
    # triangle is taken from its grain (core) side
    holders = _holders(tets, facets, len(data.points))
    cell = holders[:, 0]
    open_sc = (tags == SHELL_CORE) & shell_core
    core_first = region[holders[:, 0]] != SHELL
    cell = np.where(open_sc & ~core_first, holders[:, 1], cell)
    match = tets[cell][:, None, :] == facets[:, :, None]  # (k,3,4)
    new = np.take_along_axis(cut.tets[cell], np.argmax(match, axis=2), axis=1)
    outer = np.unique(facets[tags == OUTER_SURFACE])
    cut.touches_surface = np.any(np.isin(cut.original_vertex[cut.plus], outer), axis=1)
    shell_core_vertices = np.unique(facets[tags == SHELL_CORE])
    cut.touches_shell = (cut.facet_tag >= GB_OFFSET) & np.any(
        np.isin(cut.original_vertex[cut.plus], shell_core_vertices), axis=1)
    return CutParticle(points=cut.points, tets=cut.tets, cell_tags=region.astype(np.int32),
                       facets=new, facet_tags=tags.astype(np.int32), interfaces=cut)


def _holders(tets: np.ndarray, tris: np.ndarray, n: int) -> np.ndarray:
    """(k,2) cells holding each triangle; a boundary triangle's one cell appears twice."""
    faces, owner = tet_faces(tets)
    keys = _encode(faces, n)
    order = np.argsort(keys, kind="stable")
    keys, owner = keys[order], owner[order]
    want = _encode(np.sort(np.asarray(tris, dtype=np.int64).reshape(-1, 3), axis=1), n)
    first = np.searchsorted(keys, want, side="left")
    last = np.searchsorted(keys, want, side="right") - 1
    if np.any(last < first):
        raise ValueError("a tagged triangle is not a face of the mesh")
    return np.stack([owner[first], owner[last]], axis=1)
