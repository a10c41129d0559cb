"""mmadapt's built-in plugins (import name `mmadapt_plugins`).

Each module here is registered through the `mmadapt` entry-point group in pyproject.toml,
exactly as a third-party plugin would be; the core never imports this package.
"""
