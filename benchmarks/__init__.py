"""The side-by-side performance suite: vudo-runtime against the other Python WebAssembly hosts.

Run ``python -m benchmarks`` (or ``vudo bench``) from the repository root; ``--quick`` for
tiny sizes. See ``benchmarks/__main__.py`` for the options.
"""
