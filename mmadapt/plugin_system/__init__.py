"""The plugin system: hook specs, the interfaces plugins implement, registries and the manager that loads them."""
