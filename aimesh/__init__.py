"""aimesh as a library: settings, pure builders (`aimesh.builders`) and the Pulumi components
that register them (`aimesh.components`). The stack's own program (`__main__.py` at the repository
root) only composes these; another team's program can import them the same way."""
