"""The tree that ``devioc startproject`` renders; it is data, not code.

Files named ``*.py-tpl`` or ``*.j2`` are Jinja2 templates (so the template tree is never importable
or collected by pytest); path names are templates too (``{{project_name}}/``). This file only makes
the tree a package so ``importlib.resources`` finds it in an installed wheel; it is not rendered.
"""
