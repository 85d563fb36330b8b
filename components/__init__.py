"""Pipeline steps. Each sub-package has a pure `run(...)`, a CLI (`python -m components.<step>`)
and a KFP component. Module level stays light: heavy imports happen inside functions."""
