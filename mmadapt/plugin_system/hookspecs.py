"""Every hook mmadapt calls. Plugins implement them with `@mmadapt.hookimpl`.

Registry hooks receive a `Registry` and call `registry.add(name, item)`; they fire once,
when the plugin manager is built (`mmadapt.plugin_system.manager.get_plugins()`), and the order in which
plugins register does not matter. A name registered twice is an error naming both plugins.
"""
from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("mmadapt")
hookimpl = pluggy.HookimplMarker("mmadapt")


@hookspec
def mmadapt_register_strategies(registry):
    """Fires when plugins load: add training strategies (`mmadapt.plugin_system.interfaces.Strategy`)."""


@hookspec
def mmadapt_register_model_families(registry):
    """Fires when plugins load: add model families (`mmadapt.plugin_system.interfaces.ModelFamily`)."""


@hookspec
def mmadapt_register_layer_rules(registry):
    """Fires when plugins load: add layer-selection rules (`mmadapt.plugin_system.interfaces.LayerRule`)."""


@hookspec
def mmadapt_register_tasks(registry):
    """Fires when plugins load: add downstream tasks (`mmadapt.plugin_system.interfaces.Task`)."""


@hookspec
def mmadapt_register_embedding_inits(registry):
    """Fires when plugins load: add new-language embedding initialisers."""


@hookspec
def mmadapt_stage_finished(stage, output_dir, metrics):
    """Fires on rank 0 once per stage unit that ran, after its outputs and completion marker are written
    (for notifiers, trackers): `stage` is the unit (`pretrain`, `tokenizer/<language>`, `adapt/<language>`,
    `finetune/<task>`, `transfer/<task>/<language>`), `output_dir` its directory, `metrics` what it
    measured (as in its `stage_complete.json`). A unit skipped as already complete does not fire it."""
