"""Cohesive-zone cracking on grain boundaries and the shell/core interface.

One job per module: the traction-separation ``law``; ``cutting`` the mesh open along the
interfaces; ``assembly`` of interface-pair matrices; the interface elements (``interfaces``)
and their committed ``history``; the ``step_solver`` of the mechanical equilibrium with
cracks; Li ``transport`` across the interfaces; ``output`` for the series, the snapshot and
ParaView; ``particle`` composes them for a cut particle.
"""
