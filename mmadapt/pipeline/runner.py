"""Running a resolved recipe: its stages, for each of its strategies, then the report."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mmadapt.data.sources import resolve_synth_paths
from mmadapt.errors import MmadaptError
from mmadapt.files.locks import held_lock
from mmadapt.pipeline.building_blocks import cache_dir
from mmadapt.pipeline.checks import build_run_plan
from mmadapt.pipeline.context import StageContext
from mmadapt.pipeline.diagnostics.alignment import language_alignment
from mmadapt.pipeline.diagnostics.basin import language_basin_check
from mmadapt.pipeline.diagnostics.collapse import add_agreement, add_collapse_check
from mmadapt.pipeline.lifecycle import StageOutputs
from mmadapt.pipeline.outputs import AdaptOutputs, FinetuneOutputs, PretrainOutputs, TransferOutputs
from mmadapt.pipeline.plan import (RunPlan, StrategyRun, probe_task, reuses_big_model_as_is, stage_work_listed,
                                   task_languages)
from mmadapt.pipeline.report import table, write_report
from mmadapt.pipeline.stages.adapt import adapt_language
from mmadapt.pipeline.stages.basin_probe import SourceKappaProbe
from mmadapt.pipeline.stages.finetune import finetune_task
from mmadapt.pipeline.stages.pretrain import given_big_model, pretrain, reused_big_model
from mmadapt.pipeline.stages.tokenizer import train_language_tokenizer
from mmadapt.pipeline.stages.transfer import (predictions_path, snapshot_predictions_path, source_predictions_path,
                                              source_scores, transfer_language)
from mmadapt.recipe import save_resolved
from mmadapt.training.distributed import barrier, broadcast_object, init_distributed
from mmadapt.training.progress import quiet_third_party_bars


@dataclass
class RunResult:
    """What each stage wrote (keyed "stage", or "strategy/stage" with several strategies)."""

    output_dir: Path
    outputs: dict[str, dict[str, Path]] = field(default_factory=dict)
    #: the units found complete and skipped, keyed like `outputs`
    skipped: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)


def run_recipe(plan: RunPlan | DictConfig, plugins: Any) -> RunResult:
    """Run every stage of the plan (a resolved recipe is checked and planned first) for every strategy;
    finished stages are skipped."""
    if not isinstance(plan, RunPlan):
        plan = build_run_plan(plan, plugins)
    cfg, runs = plan.cfg, plan.strategies
    for run in runs:
        plugins.strategies.get(run.name)
    dist = init_distributed(cfg.distributed.timeout_minutes)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    quiet_third_party_bars()
    output_dir = plan.layout.output_dir
    with held_lock(plan.layout.run_lock, dist, what=f"output_dir {output_dir}"):  # one run per output directory
        if dist.is_main:
            save_resolved(cfg, output_dir)
        barrier()
        pipeline = Pipeline(plan, plugins, dist, RunResult(output_dir))
        pipeline.check_task_files()
        pipeline.train_tokenizers()
        for run in runs:
            pipeline.run_strategy(run)
        if pipeline.result.rows and dist.is_main:
            add_agreement(pipeline.result.rows, pipeline.predictions,
                          lambda task, path: plugins.tasks.get(task).read_predictions(path), cfg.report.baseline,
                          pipeline.source_predictions)
            for warning in add_collapse_check(pipeline.result.rows, cfg.report.baseline):
                print(warning, flush=True)
            write_report(output_dir, pipeline.result.rows, cfg.report.baseline)
            print(table(pipeline.result.rows), flush=True)
        barrier()
    return pipeline.result


@dataclass
class StrategyOutputs:
    """What one strategy's stages handed on so far, for the stages after them."""

    pretrained: PretrainOutputs | None = None
    #: by language
    adapted: dict[str, AdaptOutputs] = field(default_factory=dict)
    #: by task (the reused strategy's, for a strategy that reuses another's fine-tuned models)
    finetuned: dict[str, FinetuneOutputs] = field(default_factory=dict)


class Pipeline:
    """One strategy after another through the recipe's stages, each unit through the stage lifecycle
    (mmadapt.pipeline.lifecycle); the records of finished units, for the units that build on them."""

    def __init__(self, plan: RunPlan, plugins: Any, dist: Any, result: RunResult) -> None:
        self.plan, self.cfg, self.plugins, self.dist, self.result = plan, plan.cfg, plugins, dist, result
        self.several = len(plan.strategies) > 1
        self.stages = list(plan.stages)
        self.languages = list(plan.languages)
        self.tasks = _task_sections(plan.cfg, dist)
        self.tokenizers: dict[str, Path] = {}
        #: by strategy: what its stages handed on
        self.handed: dict[str, StrategyOutputs] = {}
        self.alignments: dict[str, dict[str, dict]] = {}
        #: by strategy, then language: the basin check's losses (mmadapt.pipeline.diagnostics.basin)
        self.basins: dict[str, dict[str, dict]] = {}
        #: (strategy, task, language) -> {curve step: the transfer stage's target predictions file}
        self.predictions: dict[tuple[str, str, str], dict[int, Path]] = {}
        #: (strategy, task) -> the fine-tuned model's source-language predictions (tasks with `parallel_predictions`)
        self.source_predictions: dict[tuple[str, str], Path] = {}

    def _keep(self, run: StrategyRun, unit: str, outputs: StageOutputs, reused: bool = False) -> None:
        """Note a unit's outputs (and whether this run skipped it) in the run's result, under its result key."""
        key = f"{run.name}/{unit}" if self.several else unit
        self.result.outputs[key] = outputs.to_record().paths()
        if outputs.skipped and not reused:
            self.result.skipped.append(key)

    def check_task_files(self) -> None:
        """Read every task file the run's finetune and transfer stages will read (rank 0), so a malformed
        row stops the run before pretraining, not after it; every rank gets the problem."""
        problem = None
        if self.dist.is_main:
            try:
                for section in self.tasks:
                    self._read_task_files(section)
            except MmadaptError as exc:
                problem = str(exc)
        problem = broadcast_object(problem)
        if problem:
            raise MmadaptError(problem)

    def _read_task_files(self, section: DictConfig) -> None:
        task = self.plugins.tasks.get(section.name)
        if stage_work_listed("finetune", self.stages):
            task.train_examples(section)
        if "transfer" in self.stages:
            split = self.cfg.transfer.split
            for language in [self.cfg.transfer.source_language, *task_languages(section, self.languages)]:
                task.eval_examples(section, language, split)

    def train_tokenizers(self) -> None:
        """Stage `tokenizer` (also run for `adapt`): one vocabulary per adapted language."""
        if not stage_work_listed("tokenizer", self.stages):
            return
        ctx = StageContext(self.cfg, self.plugins, self.dist, self.plan.layout.output_dir, self.plan.layout.tokenizers)
        self.tokenizers = {lang: train_language_tokenizer(ctx, lang).tokenizer for lang in self.languages}

    def run_strategy(self, run: StrategyRun) -> None:
        """Every listed stage of one strategy, in pipeline order."""
        self.handed[run.name], self.alignments[run.name], self.basins[run.name] = StrategyOutputs(), {}, {}
        self.pretrain(run)
        probing = self._probes_basin(run)
        if probing:  # `adapt.restart`'s probe reads the embeddings over the fine-tuned model
            for task_section in self.tasks:
                self.finetune(run, task_section)
        if "adapt" in self.stages:
            for lang in self.languages:
                self.adapt(run, lang, probing)
        for task_section in self.tasks:
            if stage_work_listed("finetune", self.stages) and not probing:
                self.finetune(run, task_section)
            if "transfer" in self.stages:
                self.transfer(run, task_section)

    def _probes_basin(self, run: StrategyRun) -> bool:
        """Whether `adapt.restart` probes this strategy's adaptation: on, adapt listed, over a mini-model (the
        recipe checks made sure the fine-tune is listed too)."""
        pretrained = self.handed[run.name].pretrained
        return (run.whole_batch_attempt is not None and "adapt" in self.stages
                and Path(pretrained.adapt_model) != Path(pretrained.big))

    def _basin_probe(self, run: StrategyRun, lang: str) -> SourceKappaProbe:
        """`adapt.restart`'s probe of `lang`'s embeddings, over the probing task's fine-tuned model."""
        wanted = probe_task(self.cfg, self.plugins).name
        section = next(section for section in self.tasks if section.name == wanted)
        ctx = StageContext(run.cfg, self.plugins, self.dist, run.run_dir,
                           self.plan.layout.stage_dir(run.name, "transfer", wanted), strategy=run.name,
                           run_root=run.run_root)
        return SourceKappaProbe(ctx, section, self.handed[run.name].finetuned[wanted], lang, self.tokenizers[lang])

    def pretrain(self, run: StrategyRun) -> None:
        """The strategy's pretraining, `model.pretrained` taken as given, or the reused strategy's big model."""
        handed = self.handed[run.name]
        if reuses_big_model_as_is(run, self.plugins):  # no stage of its own, so no output of its own
            handed.pretrained = reused_big_model(self.handed[run.reuse].pretrained)
            return
        if "pretrain" not in self.stages:  # check_pipeline made sure this strategy may start from model.pretrained
            handed.pretrained = given_big_model(run)
        else:
            source = run.reuse or run.init_from
            handed.pretrained = pretrain(run, self.plugins, self.dist,
                                         self.handed[source].pretrained if source else None)
        self._keep(run, "pretrain", handed.pretrained)

    def adapt(self, run: StrategyRun, lang: str, probing: bool = False) -> None:
        """Stage `adapt` for one language (`probing`: with `adapt.restart`'s probe), and its `alignment_at_1`
        (rank 0)."""
        handed = self.handed[run.name]
        pretrained = handed.pretrained
        ctx = StageContext(run.adapt_cfg, self.plugins, self.dist, run.run_dir,
                           self.plan.layout.stage_dir(run.name, "adapt", lang), strategy=run.name,
                           run_root=run.run_root)
        model_dir = pretrained.adapt_model
        adapted = adapt_language(ctx, lang, model_dir, self.tokenizers[lang], pretrained.fingerprint, pretrained.big,
                                 run.big_model_steps_cfg, self._basin_probe(run, lang) if probing else None,
                                 run.whole_batch_attempt)
        handed.adapted[lang] = adapted
        self._keep(run, f"adapt/{lang}", adapted)
        if self.dist.is_main:
            self.alignments[run.name][lang] = language_alignment(ctx, lang, adapted, model_dir)
            self.basins[run.name][lang] = language_basin_check(ctx, lang, adapted, model_dir, pretrained.big)

    def finetune(self, run: StrategyRun, task_section: DictConfig) -> None:
        """Stage `finetune` for one task (or the fine-tuned model of the strategy this one reuses)."""
        task, handed = task_section.name, self.handed[run.name]
        if run.reuse:
            handed.finetuned[task] = self.handed[run.reuse].finetuned[task]
        else:
            ctx = StageContext(run.finetune_cfgs[task], self.plugins, self.dist, run.run_dir,
                               self.plan.layout.stage_dir(run.name, "finetune", task), strategy=run.name,
                               run_root=run.run_root)
            handed.finetuned[task] = finetune_task(ctx, task_section, handed.pretrained.big,
                                                   handed.pretrained.fingerprint)
        self._keep(run, f"finetune/{task}", handed.finetuned[task], reused=bool(run.reuse))

    def transfer(self, run: StrategyRun, task_section: DictConfig) -> None:
        """Stage `transfer` for one task: the source score, then each evaluated language and its report row."""
        task, handed = task_section.name, self.handed[run.name]
        finetuned = handed.finetuned[task]
        ctx = StageContext(run.cfg, self.plugins, self.dist, run.run_dir,
                           self.plan.layout.stage_dir(run.name, "transfer", task), strategy=run.name,
                           run_root=run.run_root)
        plugin = self.plugins.tasks.get(task)
        source = source_scores(ctx, task_section, finetuned)[plugin.metric_names[0]]
        if plugin.parallel_predictions:
            self.source_predictions[run.name, task] = source_predictions_path(finetuned, plugin)
        for lang in task_languages(task_section, self.languages):
            ctx = StageContext(run.cfg, self.plugins, self.dist, run.run_dir,
                               self.plan.layout.stage_dir(run.name, "transfer", task, lang), strategy=run.name,
                               run_root=run.run_root)
            adapted = handed.adapted[lang]
            transferred = transfer_language(ctx, task_section, finetuned, lang, adapted)
            self._keep(run, f"transfer/{task}/{lang}", transferred)
            row = _row(run.name, task, lang, source, transferred, adapted, self.alignments[run.name].get(lang, {}),
                       self.basins[run.name].get(lang, {}))
            row["stage_metrics"] = {"pretrain": handed.pretrained.metrics, "adapt": adapted.cost.metrics(),
                                    "finetune": finetuned.metrics}
            # the last step's predictions are the final embeddings'
            self.predictions[run.name, task, lang] = {
                **{p["step"]: snapshot_predictions_path(ctx.stage_dir, p["step"], plugin) for p in row["curve"]},
                row["adapt_steps"]: predictions_path(ctx.stage_dir, "target", plugin)}
            self.result.rows.append(row)


def _task_sections(cfg: DictConfig, dist: Any) -> list[DictConfig]:
    """The task sections with `synth:DIR/FILE` paths made real (rank 0 generates the data first)."""
    cache = cache_dir(cfg)
    settings = OmegaConf.to_container(cfg.data.synth, resolve=True)
    sections = []
    for rank_turn in (True, False):
        if dist.is_main == rank_turn:
            sections = [OmegaConf.create(resolve_synth_paths(OmegaConf.to_container(t, resolve=True), settings, cache))
                        for t in cfg.tasks]
        barrier()
    return sections


def _row(strategy: str, task: str, language: str, source: float, transfer: TransferOutputs, adapted: AdaptOutputs,
         alignment: dict, basin: dict) -> dict[str, Any]:
    t, a = transfer, adapted.cost
    init, big_model = a.init_spent, a.big_model_spent
    per_step = {"alignment_at_1": alignment.get("alignment_by_step", {}),
                **{f"{model}_model_mlm_loss": losses for model, losses in basin.get("basin_losses", {}).items()}}
    curve = [{**point, **{key: by_step[point["step"]] for key, by_step in per_step.items() if point["step"] in by_step}}
             for point in t.curve or []]
    return {"strategy": strategy, "task": task, "language": language, "source_score": source,
            "target_score": t.target_score, "control_score": t.control_score,
            "adapt_steps": a.steps, "adapt_seconds": a.seconds, "adapt_flops": a.flops,
            "adapt_big_model_steps": big_model.steps,
            "adapt_init_flops": init.flops, "adapt_init_seconds": init.seconds,
            "adapt_tokens": a.tokens, "adapt_model_layers": a.model_layers,
            "adapt_peak_memory_bytes": a.peak_memory_bytes, "adapt_data_wait_fraction": a.data_wait_fraction,
            "target_metrics": t.target_metrics, "control_metrics": t.control_metrics,
            "alignment_at_1": alignment.get("alignment_at_1"), "alignment_pairs": alignment.get("alignment_pairs"),
            "basin_check_flops": basin.get("basin_check_flops"),
            **({"adapt_restart": asdict(a.restart)} if a.restart is not None else {}),
            "curve": curve}
