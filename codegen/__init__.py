"""Typed stubs generated from ``spirits/*.dol``: one module per Spirit (``codegen.counter``...).

Do not edit the modules by hand. A test fails when they are stale; refresh them with
``python -m vudo_runtime.codegen.generator --refresh``.
"""
