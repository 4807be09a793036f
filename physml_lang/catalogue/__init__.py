"""The catalogue: the names the language resolves (lattices, graphs, field domains, ...), with
their documentation and static facts. Front-end data: no torch, no runtime imports."""
