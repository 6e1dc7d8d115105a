"""Particle mesh for DOLFINx: build once with gmsh (rank 0), cache, distribute with tags.

Cache layout, ``<cache_dir>/<hash of the geometry section>/``:

- ``data.npz``: the raw arrays of :class:`~nmcfem.geometry.ParticleMeshData` — the cache's
  source of truth. Every run builds its distributed mesh from these arrays in their stored
  order, so the input vertex numbering (which checkpoints key on) is the same for any number
  of ranks and any later run.
- ``mesh.xdmf``/``mesh.h5`` (with ``cell_tags`` and ``facet_tags``) for ParaView, and
  ``mesh.msh`` (gmsh format) for other tools.
- ``stats.json``: the mesh statistics.

A cache folder is written under a temporary name and renamed into place, so a folder that
exists is complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from mpi4py import MPI

import basix.ufl
import dolfinx
import ufl
from dolfinx.io import distribute_entity_data

from nmcfem.atomic import atomic_write_text
from nmcfem.cohesive.cutting import InterfaceMesh, cut_particle
from nmcfem.config import Geometry, section_hash, to_dict
from nmcfem.geometry import (
    GB_OFFSET,
    MESHER_VERSION,
    MIN_CORE_QUALITY,
    OUTER_SURFACE,
    SHELL,
    SHELL_CORE,
    ParticleMeshData,
    build_particle,
    write_msh,
)
from nmcfem.parallel import run_on_root

CACHE_FILES = ("data.npz", "stats.json", "mesh.msh", "mesh.xdmf", "mesh.h5")


@dataclass
class ParticleDomain:
    """A distributed particle mesh with its tags and per-grain data (same on every rank).

    Attributes
    ----------
    mesh: DOLFINx mesh (coordinates in m).
    cell_tags: grain id 1..N per cell, SHELL (0) in the shell.
    facet_tags: OUTER_SURFACE, SHELL_CORE, GB_OFFSET + k on grain boundary k.
    n_grains: number of grains.
    gb_pairs: (K,2) grain ids of grain boundary k (lower first).
    grain_centroids: (N,3) m; grain_volumes: (N,) m^3.
    radius, shell_thickness: m.
    stats: statistics of the raw mesh.
    cache_path: folder of the cache entry; from_cache: whether it was reused.
    data: the raw (uncut) arrays on rank 0 (None elsewhere).
    interfaces: when cohesive interfaces are open, the pairs of facing triangles on the cut
        mesh's vertex numbering (same on every rank); None for an uncut mesh.
    n_input_vertices: vertices of the distributed mesh's input numbering.
    """

    mesh: dolfinx.mesh.Mesh
    cell_tags: dolfinx.mesh.MeshTags
    facet_tags: dolfinx.mesh.MeshTags
    n_grains: int
    gb_pairs: np.ndarray
    grain_centroids: np.ndarray
    grain_volumes: np.ndarray
    radius: float
    shell_thickness: float
    stats: dict
    cache_path: Path
    from_cache: bool
    data: ParticleMeshData | None = field(default=None, repr=False)
    interfaces: InterfaceMesh | None = field(default=None, repr=False)
    n_input_vertices: int = 0


def cache_folder(geom: Geometry, cache_dir: str | Path) -> Path:
    """Cache folder of ``geom``: ``cache_dir/<12-hex hash of the geometry section and the
    meshing recipe's version>``."""
    return Path(cache_dir) / section_hash({"geometry": to_dict(geom), "mesher": MESHER_VERSION})


def _is_complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in ("data.npz", "stats.json"))


def read_cached(folder: Path) -> ParticleMeshData:
    """Raw particle mesh arrays from a cache folder."""
    with np.load(folder / "data.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    return ParticleMeshData.from_arrays(arrays, json.loads((folder / "stats.json").read_text()))


def _write_cache(data: ParticleMeshData, folder: Path) -> None:
    """Write the arrays, stats and .msh of a new cache entry atomically (rank 0)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        np.savez_compressed(tmp / "data.npz", **data.arrays())
        (tmp / "stats.json").write_text(json.dumps(data.stats, indent=2) + "\n")
        write_msh(data, tmp / "mesh.msh")
        try:
            os.replace(tmp, folder)
        except OSError:  # another process finished the same entry first: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def create_distributed(data: ParticleMeshData | None, comm: MPI.Comm
                       ) -> tuple[dolfinx.mesh.Mesh, dolfinx.mesh.MeshTags, dolfinx.mesh.MeshTags]:
    """Distribute rank-0 mesh arrays over ``comm``; return mesh, cell tags and facet tags.

    Parameters
    ----------
    data: raw mesh on rank 0 (ignored elsewhere).
    comm: communicator of the mesh.
    """
    root = comm.rank == 0
    element = ufl.Mesh(basix.ufl.element("Lagrange", "tetrahedron", 1, shape=(3,)))
    if root:
        cells, points = data.tets.astype(np.int64), data.points
        cell_values = data.cell_tags.astype(np.int32)
        facets, facet_values = data.facets.astype(np.int64), data.facet_tags.astype(np.int32)
    else:
        cells, points = np.zeros((0, 4), dtype=np.int64), np.zeros((0, 3))
        cell_values = np.zeros(0, dtype=np.int32)
        facets, facet_values = np.zeros((0, 3), dtype=np.int64), np.zeros(0, dtype=np.int32)
    # Interior-facet integrals (grain boundaries) need the cells on both sides of a facet.
    partitioner = dolfinx.mesh.create_cell_partitioner(dolfinx.mesh.GhostMode.shared_facet, 2)
    mesh = dolfinx.mesh.create_mesh(comm, cells, element, points, partitioner=partitioner)
    tdim = mesh.topology.dim
    mesh.topology.create_connectivity(tdim - 1, tdim)
    tags = []
    for dim, entities, values in ((tdim, cells, cell_values), (tdim - 1, facets, facet_values)):
        local_entities, local_values = distribute_entity_data(mesh, dim, entities, values)
        adj = dolfinx.graph.adjacencylist(local_entities)
        mt = dolfinx.mesh.meshtags_from_entities(mesh, dim, adj, local_values.astype(np.int32))
        tags.append(mt)
    tags[0].name, tags[1].name = "cell_tags", "facet_tags"
    return mesh, tags[0], tags[1]


def _write_xdmf(mesh, cell_tags, facet_tags, folder: Path, comm: MPI.Comm) -> None:
    """Write the distributed mesh and tags as XDMF for ParaView (collective).

    Concurrent sweep cases with the same geometry may write the same cache folder at once, so
    each writer uses temporary names of its own and renames the (identical) results into place.
    """
    stem = comm.bcast(f".mesh.{os.getpid()}.{time.time_ns()}.tmp" if comm.rank == 0 else None,
                      root=0)
    tmp = folder / f"{stem}.xdmf"
    with dolfinx.io.XDMFFile(comm, str(tmp), "w") as xdmf:
        xdmf.write_mesh(mesh)
        mesh.topology.create_connectivity(mesh.topology.dim - 1, mesh.topology.dim)
        xdmf.write_meshtags(cell_tags, mesh.geometry)
        xdmf.write_meshtags(facet_tags, mesh.geometry)
    comm.barrier()
    if comm.rank == 0:
        os.replace(folder / f"{stem}.h5", folder / "mesh.h5")
        atomic_write_text(folder / "mesh.xdmf", tmp.read_text().replace(f"{stem}.h5", "mesh.h5"))
        os.unlink(tmp)
    comm.barrier()


def quality_warning(quality: float, geom: Geometry) -> str:
    """The warning for a mesh whose worst core tetrahedron has radius ratio ``quality``."""
    return (f"WARNING: the worst core tetrahedron has radius ratio {quality:.3g} < "
            f"{MIN_CORE_QUALITY} even after remeshing with refinement at short Voronoi edges "
            f"(slivers where Voronoi edges or vertices of the grains come within nanometres of "
            f"each other or of the surface); results are valid, but the stresses of those cells "
            f"are noisy and iterative solvers slow down. For a better mesh try another "
            f"geometry.grain_seed (now {geom.grain_seed}), explicit geometry.grain_points or a "
            f"smaller geometry.mesh.boundary_size")


def load_particle(geom: Geometry, comm: MPI.Comm = MPI.COMM_WORLD,
                  cache_dir: str | Path = "meshes",
                  log: Callable[[str], None] | None = None,
                  cut: tuple[bool, bool] = (False, False)) -> ParticleDomain:
    """Build (rank 0, gmsh) or reuse the cached particle mesh and distribute it over ``comm``.

    Parameters
    ----------
    geom: geometry section of the config.
    comm: communicator of the mesh.
    cache_dir: folder of the mesh cache.
    log: called with progress messages on rank 0 (None: silent).
    cut: (grain boundaries, shell/core interface): open these interface families for
        cohesive elements (duplicated vertices, :func:`nmcfem.cohesive.cutting.cut_particle`).
    """
    say = log if (log is not None and comm.rank == 0) else (lambda _m: None)
    folder = cache_folder(geom, cache_dir)

    def prepare() -> tuple[bool, float]:
        if _is_complete(folder):
            return True, 0.0
        t0 = time.perf_counter()
        data = build_particle(geom)
        _write_cache(data, folder)
        return False, time.perf_counter() - t0

    hit, seconds = run_on_root(prepare, comm)
    if hit:
        say(f"mesh cache hit: {folder}")
    else:
        say(f"built mesh with gmsh in {seconds:.1f} s -> {folder}")
    data = read_cached(folder) if comm.rank == 0 else None
    cut_open = bool(cut[0]) or (bool(cut[1]) and geom.shell_thickness > 0)
    if cut_open:
        built: dict = {}

        def cut_on_root() -> InterfaceMesh:
            built["cut"] = cut_particle(data, bool(cut[0]), bool(cut[1]))
            return built["cut"].interfaces

        interfaces = run_on_root(cut_on_root, comm)
        mesh, cell_tags, facet_tags = create_distributed(built.get("cut"), comm)
        n_input = len(interfaces.points)
    else:
        mesh, cell_tags, facet_tags = create_distributed(data, comm)
        interfaces = None
        n_input = comm.bcast(len(data.points) if comm.rank == 0 else None, root=0)
        if not (folder / "mesh.xdmf").is_file():
            _write_xdmf(mesh, cell_tags, facet_tags, folder, comm)
    if comm.rank == 0 and data.stats["quality_min_core"] < MIN_CORE_QUALITY:
        say(quality_warning(data.stats["quality_min_core"], geom))
    shared = comm.bcast(None if data is None else {
        "gb_pairs": data.gb_pairs, "grain_centroids": data.grain_centroids,
        "grain_volumes": data.grain_volumes, "radius": data.radius,
        "shell_thickness": data.shell_thickness, "stats": data.stats}, root=0)
    return ParticleDomain(mesh=mesh, cell_tags=cell_tags, facet_tags=facet_tags,
                          n_grains=len(shared["grain_volumes"]), gb_pairs=shared["gb_pairs"],
                          grain_centroids=shared["grain_centroids"],
                          grain_volumes=shared["grain_volumes"], radius=shared["radius"],
                          shell_thickness=shared["shell_thickness"], stats=shared["stats"],
                          cache_path=folder, from_cache=hit, data=data,
                          interfaces=interfaces, n_input_vertices=n_input)


def mesh_statistics(domain: ParticleDomain) -> dict[str, float]:
    """Volumes per region and areas per facet family of the distributed mesh (collective).

    Returns m^3 / m^2 values: ``volume``, ``shell_volume``, ``core_volume``, ``outer_area``,
    ``shell_core_area``, ``grain_boundary_area``, plus ``n_cells`` (global).
    """
    mesh = domain.mesh
    comm = mesh.comm
    dx = ufl.Measure("dx", domain=mesh, subdomain_data=domain.cell_tags)
    ds = ufl.Measure("ds", domain=mesh, subdomain_data=domain.facet_tags)
    dS = ufl.Measure("dS", domain=mesh, subdomain_data=domain.facet_tags)
    one = dolfinx.fem.Constant(mesh, 1.0)

    def total(form) -> float:
        return comm.allreduce(dolfinx.fem.assemble_scalar(dolfinx.fem.form(form)), op=MPI.SUM)

    gb_ids = tuple(int(GB_OFFSET + k) for k in range(len(domain.gb_pairs)))
    stats = {
        "volume": total(one * dx),
        "shell_volume": total(one * dx(SHELL)),
        "core_volume": total(one * dx(tuple(range(1, domain.n_grains + 1)))),
        "outer_area": total(one * ds(OUTER_SURFACE)),
        "shell_core_area": total(one * dS(SHELL_CORE)) if domain.shell_thickness > 0 else 0.0,
        "grain_boundary_area": total(one * dS(gb_ids)) if gb_ids else 0.0,
        "n_cells": comm.allreduce(mesh.topology.index_map(3).size_local, op=MPI.SUM),
    }
    return stats
