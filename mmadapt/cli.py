"""The `mmadapt` command line."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from mmadapt.errors import MmadaptError

#: `-h` as well as `--help`, on every command
_HELP = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(pretty_exceptions_show_locals=False, no_args_is_help=True, add_completion=False,
                  context_settings=_HELP, help="Mini-model adaptation of masked language models to new languages.")
recipe_app = typer.Typer(no_args_is_help=True, context_settings=_HELP,
                         help="Inspect and check recipes without training.")
app.add_typer(recipe_app, name="recipe")
data_app = typer.Typer(no_args_is_help=True, context_settings=_HELP,
                       help="Make data: tokenise a recipe's corpora ahead of training; "
                            "the built-in synthetic benchmark.")
app.add_typer(data_app, name="data")

_OVERRIDES_HELP = ("Recipe overrides: key=value (e.g. train.max_steps=10 output_dir=runs/try1 tasks.0.max_length=64), "
                   "~key deletes a key the recipe file sets.")
_EXTRA_ARGS = {"allow_extra_args": True, "ignore_unknown_options": True, **_HELP}


def _print_version(value: bool) -> None:
    """`--version`: print the installed version and stop."""
    if value:
        from importlib.metadata import version

        typer.echo(f"mmadapt {version('mmadapt')}")
        raise typer.Exit()


@app.callback()
def _main_options(_version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                                help="Print mmadapt's version and exit.")) -> None:
    """Mini-model adaptation of masked language models to new languages."""


def _checked(recipe: Path, overrides: List[str], local_files: str = "warn") -> tuple:
    """The recipe resolved, checked and planned as `train` does it (`check_before_work`), its warnings
    printed (local files missing, too, when `local_files="warn"`); (run plan, plugins)."""
    from mmadapt.pipeline.checks import check_before_work
    from mmadapt.plugin_system.manager import get_plugins

    plugins = get_plugins()
    cfg, warnings = check_before_work(recipe, overrides, plugins, local_files)
    for warning in warnings:
        typer.echo(f"warning: {recipe}: {warning}", err=True)
    return cfg, plugins


def _without_launcher_args(argv: List[str]) -> List[str]:
    """Drop the `--local_rank=N` the deepspeed launcher adds (LOCAL_RANK says the same)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg.startswith(("--local_rank", "--local-rank")):
            skip = "=" not in arg
        else:
            out.append(arg)
    return out


@app.command(context_settings=_EXTRA_ARGS)
def train(ctx: typer.Context, recipe: Path = typer.Argument(..., help="Recipe YAML file."),
          overrides: Optional[List[str]] = typer.Argument(None, help=_OVERRIDES_HELP),
          rerun: bool = typer.Option(False, "--rerun", help="Re-run finished stages whose settings changed, replacing "
                                                            "their outputs (without it they are refused, with what "
                                                            "changed); same as rerun=true."),
          smoke: bool = typer.Option(False, "--smoke", help="Try the recipe: every stage's steps capped at "
                                                            "--smoke-steps, written to <output_dir>-smoke."),
          smoke_steps: int = typer.Option(2, "--smoke-steps", min=1,
                                          help="The steps of each stage with --smoke.")) -> None:
    """Run a recipe: validate it, then train and write everything into its output_dir.

    Finished stages with the same settings are skipped; an interrupted one resumes from its newest checkpoint.
    """
    from mmadapt.pipeline.runner import run_recipe
    from mmadapt.training.stopping import stop_on_signal

    given = list(overrides or []) + ctx.args + (["rerun=true"] if rerun else [])
    with stop_on_signal():  # a signal before (or between) training loops: one line, exit 75
        if smoke:
            given += _smoke_overrides(recipe, given, smoke_steps)
        plan, plugins = _checked(recipe, given, local_files="error")
        result = run_recipe(plan, plugins)
    from mmadapt.training.distributed import init_distributed

    if init_distributed().is_main:
        for stage, outputs in result.outputs.items():
            if stage.endswith("pretrain") or "/transfer/" in f"/{stage}":
                for name, path in outputs.items():
                    typer.echo(f"{stage}: {name} -> {path}")
        if result.rows:
            typer.echo(f"report: {result.output_dir / 'report.md'} and report.json")
        typer.echo(f"run directory: {result.output_dir} (resolved recipe: {result.output_dir / 'recipe.yaml'})")


def _smoke_overrides(recipe: Path, overrides: List[str], steps: int) -> List[str]:
    """`--smoke`'s overrides for the recipe as given (mmadapt.recipe.smoke), announced in one line."""
    from mmadapt.recipe import load_recipe
    from mmadapt.recipe.smoke import smoke_overrides

    caps = smoke_overrides(load_recipe(recipe, overrides), steps)
    typer.echo(f"smoke run: every stage capped at {steps} steps, into {caps[0].split('=', 1)[1]} "
               f"({' '.join(caps[1:]) or 'no other change'})")
    return caps


@recipe_app.command("show", context_settings=_EXTRA_ARGS)
def recipe_show(ctx: typer.Context, recipe: Path = typer.Argument(..., help="Recipe YAML file."),
                overrides: Optional[List[str]] = typer.Argument(None, help=_OVERRIDES_HELP)) -> None:
    """Print the resolved recipe (defaults <- file <- overrides) as YAML, after the checks `train` makes
    before any work (a missing local file is a warning here)."""
    from mmadapt.recipe import to_yaml

    plan, _ = _checked(recipe, list(overrides or []) + ctx.args)
    typer.echo(to_yaml(plan.cfg), nl=False)


@recipe_app.command("validate", context_settings=_EXTRA_ARGS)
def recipe_validate(ctx: typer.Context, args: List[str] = typer.Argument(
        ..., help="Recipe YAML files, then overrides (key=value, ~key) applied to each.")) -> None:
    """Check recipes without training, as `train` does before any work; report every problem of every recipe.

    A local data file (or task file, or `model.pretrained`) that does not exist is only a warning
    here: the recipe may be meant for another machine (`train` refuses it).
    """
    words = list(args) + ctx.args
    overrides = [word for word in words if "=" in word or word.startswith(("~", "-"))]
    failed = 0
    for path in [Path(word) for word in words if word not in overrides]:
        try:
            _checked(path, overrides)
            typer.echo(f"ok: {path}")
        except MmadaptError as exc:
            failed += 1
            typer.echo(f"invalid: {exc}", err=True)
    if failed:
        raise typer.Exit(code=2)


def _synth_languages(languages: Optional[str], custom: List[str], describe_only: bool) -> list:
    """`data synth`'s languages: the built-in codes listed (default src,vo,na; all to describe), then the
    `--custom-language` JSON settings."""
    import json

    from mmadapt.synth import BUILTIN_LANGUAGES

    default = ",".join(BUILTIN_LANGUAGES) if describe_only else "src,vo,na"
    codes: list = [code.strip() for code in (languages or default).split(",") if code.strip()]
    for spec in custom:
        try:
            codes.append(json.loads(spec))
        except json.JSONDecodeError as exc:
            raise ValueError(f"--custom-language takes a JSON object; {spec!r}: {exc}") from None
    return codes


@data_app.command("synth")
def data_synth(
    out_dir: Path = typer.Argument(..., help="Directory to write the benchmark into (replaced if it exists)."),
    seed: int = typer.Option(0, help="Seed: the same seed and sizes always give byte-identical files."),
    languages: Optional[str] = typer.Option(
        None, help="Comma-separated built-in language codes, `src` included (default: src,vo,na; with "
                   "--describe: every built-in language, listed with what sets it apart)."),
    custom_language: Optional[List[str]] = typer.Option(
        None, "--custom-language", help='A new language from settings, as JSON (repeatable), e.g. '
                                        '\'{"code": "x1", "script": "hebrew", "order": {"clause": "SOV"}, '
                                        '"morphology": "prefix", "synonyms": 0.3}\'.'),
    grammar_variant: int = typer.Option(
        0, help="Source grammar: 0 is the standard one; k > 0 draws other inventory sizes and weights from the seed."),
    corpus_sentences: Optional[int] = typer.Option(
        None, help="Statements per language corpus (default: the generator's)."),
    nli_train: Optional[int] = typer.Option(
        None, help="NLI training pairs (source language) (default: the generator's)."),
    nli_dev: Optional[int] = typer.Option(None, help="NLI dev pairs per language (default: the generator's)."),
    nli_test: Optional[int] = typer.Option(None, help="NLI test pairs per language (default: the generator's)."),
    pawsx_train: Optional[int] = typer.Option(
        None, help="Paraphrase training pairs (source language) (default: the generator's)."),
    pawsx_dev: Optional[int] = typer.Option(
        None, help="Paraphrase dev pairs per language (default: the generator's)."),
    pawsx_test: Optional[int] = typer.Option(
        None, help="Paraphrase test pairs per language (default: the generator's)."),
    qa_train: Optional[int] = typer.Option(
        None, help="QA training questions (source language) (default: the generator's)."),
    qa_dev: Optional[int] = typer.Option(None, help="QA dev questions per language (default: the generator's)."),
    qa_test: Optional[int] = typer.Option(None, help="QA test questions per language (default: the generator's)."),
    pawsx_frames: Optional[str] = typer.Option(
        None, help="Comma-separated paraphrase frames: and, relative (default: the generator's, and)."),
    describe_only: bool = typer.Option(False, "--describe", help="Only describe the languages and tasks."),
) -> None:
    """Write the synthetic benchmark (corpora, lexicons, NLI/PAWS-X/MLQA-format task files).

    Recipes use the same generator directly through `synth:LANG` sources and `data.synth`;
    this command writes a copy to look at, or to point a recipe at as ordinary files.
    """
    from mmadapt.synth import describe, generate_benchmark

    try:
        codes = _synth_languages(languages, custom_language or [], describe_only)
        if describe_only:
            typer.echo(describe(codes))
            return
        settings = {"corpus_sentences": corpus_sentences, "nli_train": nli_train, "nli_dev": nli_dev,
                 "nli_test": nli_test, "pawsx_train": pawsx_train, "pawsx_dev": pawsx_dev, "pawsx_test": pawsx_test,
                 "qa_train": qa_train, "qa_dev": qa_dev, "qa_test": qa_test,
                 "pawsx_frames": [f.strip() for f in pawsx_frames.split(",") if f.strip()] if pawsx_frames else None}
        bench = generate_benchmark(out_dir, seed=seed, languages=codes, grammar_variant=grammar_variant,
                                   **{name: value for name, value in settings.items() if value is not None})
    except ValueError as exc:
        raise MmadaptError(f"mmadapt data synth: {exc}") from exc
    names = ", ".join(code if isinstance(code, str) else str(code.get("code")) for code in codes)
    typer.echo(f"wrote the synthetic benchmark (languages {names}, seed {seed}, grammar variant {grammar_variant}) "
               f"to {bench.root}; its files are listed in {bench.manifest}")


@data_app.command("prepare", context_settings=_EXTRA_ARGS)
def data_prepare(ctx: typer.Context, recipe: Path = typer.Argument(..., help="Recipe YAML file."),
                 overrides: Optional[List[str]] = typer.Argument(None, help=_OVERRIDES_HELP)) -> None:
    """Tokenise every corpus the recipe's stages read into the data cache, ahead of training (on a CPU node
    before a GPU job, say); `mmadapt train` with the same recipe then reuses the blocks.

    The tokenizers come first, as training makes them: the pretraining one, and each new language's
    (stage `tokenizer`, written into output_dir and skipped by the run as complete).
    """
    from mmadapt.training.distributed import init_distributed
    from mmadapt.commands.prepare import prepare_recipe_data

    plan, plugins = _checked(recipe, list(overrides or []) + ctx.args, local_files="error")
    prepared = prepare_recipe_data(plan, plugins)
    if init_distributed().is_main:
        for corpus in prepared:
            state = "built" if corpus.built else "already prepared"
            typer.echo(f"{corpus.what}: {corpus.blocks:,} blocks of {corpus.block_size} tokens ({state}) "
                       f"-> {corpus.directory}")
        typer.echo(f"prepared {len(prepared)} corpora; `mmadapt train {recipe}` with the same settings reuses them")


@app.command("compute", context_settings=_EXTRA_ARGS)
def compute(ctx: typer.Context, recipe: Path = typer.Argument(..., help="Recipe YAML file."),
            overrides: Optional[List[str]] = typer.Argument(None, help=_OVERRIDES_HELP)) -> None:
    """Predict the training FLOPs per step of each stage, and adapt's full/mini ratio, without training."""
    from mmadapt.commands.compute import predict, report

    plan, plugins = _checked(recipe, list(overrides or []) + ctx.args)
    predictions, source = predict(plan, plugins)
    typer.echo(report(plan, predictions, source))


@app.command("plugins")
def list_plugins() -> None:
    """List every plugin, the package it comes from and what it registers."""
    from mmadapt.plugin_system.manager import get_plugins

    for info in get_plugins().describe():
        version = f" {info.version}" if info.version else ""
        typer.echo(f"{info.name}  (package: {info.package}{version})")
        for kind, names in sorted(info.registers.items()):
            typer.echo(f"    {kind}: {', '.join(names)}")


@app.command("swap")
def swap(model_dir: Path = typer.Argument(..., help="A fine-tuned model (save_pretrained directory, any task head)."),
         pack_dir: Path = typer.Argument(..., help="A language pack (<run>/adapt/<language>/pack)."),
         out_dir: Path = typer.Argument(..., help="Where to write the target-language model (replaced if it exists)."),
         force: bool = typer.Option(False, "--force", help="Swap even when the model's body cannot be shown to be "
                                                           "the pack's (shapes must still agree).")) -> None:
    """Build the target-language model: the pack's embeddings and tokenizer swapped into MODEL_DIR.

    The pack must fit the model's body (same pretrained body, or a model fine-tuned from it by
    mmadapt); one that does not is refused with the reason.
    """
    from mmadapt.plugin_system.manager import get_plugins
    from mmadapt.commands.swap import swap_language

    for warning in swap_language(model_dir, pack_dir, out_dir, get_plugins(), force=force):
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(f"wrote {out_dir}: {model_dir} with the language pack {pack_dir} (model and tokenizer)")


@app.command("packs")
def packs(run_dir: Path = typer.Argument(..., help="A run's output_dir."),
          as_json: bool = typer.Option(False, "--json", help="Print a JSON list of {pack, manifest} instead.")) -> None:
    """List the language packs a run's adapt stages wrote, with their manifests."""
    import json

    from mmadapt.model.packs import find_packs, packs_table

    if not run_dir.is_dir():
        raise MmadaptError(f"{run_dir} is not a directory (give a run's output_dir)")
    found = find_packs(run_dir)
    if as_json:
        typer.echo(json.dumps([{"pack": str(path), "manifest": manifest} for path, manifest in found], indent=1))
    elif not found:
        typer.echo(f"no language packs under {run_dir} (each adapt stage writes one, in adapt/<language>/pack)")
    else:
        typer.echo(packs_table(found, run_dir))


@app.command("score")
def score(task: str = typer.Argument(..., help="Task name (see `mmadapt plugins`), e.g. xnli, pawsx, mlqa."),
          gold: Path = typer.Argument(..., help="The benchmark's official gold file."),
          predictions: Path = typer.Argument(..., help="Predictions in the benchmark's layout."),
          language: str = typer.Option("en", "--language", "-l", help="Language of the gold examples.")) -> None:
    """Print the official metric of a predictions file as JSON, on the benchmark's own scale."""
    import json

    from mmadapt.plugin_system.manager import get_plugins

    scorer = get_plugins().tasks.get(task)
    examples = scorer.read_gold(gold, language)
    predicted = scorer.read_predictions(predictions)
    missing = sum(1 for ex in examples if ex["id"] not in predicted)
    if missing:
        typer.echo(f"warning: {missing} of {len(examples)} gold examples have no prediction in {predictions} "
                   "and score 0", err=True)
    metrics = scorer.score(examples, predicted, language)
    typer.echo(json.dumps({name: value * scorer.official_scale for name, value in metrics.items()}))


def main() -> None:
    """Console-script entry point: user errors print one clear message, no traceback."""
    try:
        _run_app()
    finally:  # whatever the exit, the process group goes first (see shutdown_distributed)
        if "torch" in sys.modules:  # commands that never loaded torch have none, and need not load it now
            from mmadapt.training.distributed import shutdown_distributed

            shutdown_distributed()


def _run_app() -> None:
    """The app, with user errors turned into one line and their exit codes (`SystemExit`)."""
    try:
        code = app(args=_without_launcher_args(sys.argv[1:]), prog_name="mmadapt", standalone_mode=False)
        if isinstance(code, int) and code:  # click returns typer.Exit's code when not standalone
            sys.exit(code)
    except MmadaptError as exc:
        typer.echo(f"{exc.label}: {exc}", err=True)
        sys.exit(exc.exit_code)
    except OSError as exc:  # a user's file or disk: the path and the reason, no traceback
        from mmadapt.errors import os_error_message

        typer.echo(f"error: {os_error_message(exc)}", err=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:
        # Usage errors (unknown command, bad option): click's own message, no traceback. Typer
        # raises them from the click it bundles, so they are recognised by shape, not by class.
        show, exit_code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(exit_code, int):
            show()
            sys.exit(exit_code)
        if type(exc).__name__ == "Abort":
            sys.exit(1)
        raise


if __name__ == "__main__":
    main()
