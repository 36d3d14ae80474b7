"""The built-in drills: one module per playbook or fault family, each drill marked ``drill``.

This directory is the catalogue's source and this repository's drill run; the package ships it as
``agent_drills_catalogue``, which the pytest plugin collects in a user's project when the run asks
for drills (``pytest -m drill``; harness/drill/catalogue.py has the rule). Budgets a drill needs
beyond the defaults sit in its marker (``budget={...}``), so they travel with it.
"""
