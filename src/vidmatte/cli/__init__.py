"""Command line: one module per subcommand, each with ``add_arguments(parser)`` and ``run(args) -> int``.

Subcommand modules import heavy libraries (onnxruntime, av, torch) inside ``run`` so ``--help`` stays fast.
"""
