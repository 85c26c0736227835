"""``agentwatt calibrate``: a click group (attached to the main group in ``cli/main.py``).

Without a subcommand it runs the sweep (``--preset ... --device ... --out ...``); subcommands
``transfer`` (roofline scaling, ``calibrate/transfer.py``), ``check`` (fidelity against a real serving
loop, ``validate/check.py``), ``fit-trace`` (a profile from a recorded step trace,
``calibrate/fit_trace.py``) and ``gpus`` (the catalog, ``core/gpus.py``).

Errors are ``AgentwattError``s with one-line messages; the main group prints and exits on them.
"""
from __future__ import annotations

from pathlib import Path

import click

from agentwatt.calibrate.presets import PRESETS
from agentwatt.core.profile import FitStats, Profile
from agentwatt.core.errors import AgentwattError, InputError


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def _fit_line(what: str, fit: FitStats | None) -> str:
    if fit is None:
        return f"{what} fit: no statistics"
    line = f"{what} fit: MAPE {_pct(fit.mape)} (max {_pct(fit.max_ape)}) on {fit.n_points} points"
    if fit.holdout_n_points:
        line += (f"; holdout MAPE {_pct(fit.holdout_mape)} (max {_pct(fit.holdout_max_ape)}) "
                 f"on {fit.holdout_n_points} points")
    return line


def summarize(profile: Profile, path: Path | None) -> str:
    """A few lines for the terminal: what was measured, how well it fits, power, where it went."""
    prov, hw = profile.provenance, profile.hardware
    threads = prov.get("threads")
    lines = [f"calibrated {prov.get('preset')} on {hw.device_name} ({prov.get('device')}, {prov.get('dtype')}, "
             f"{threads} thread{'' if threads == 1 else 's'}): {prov.get('points_measured')} of "
             f"{prov.get('points_planned')} points in {prov.get('wall_time_s', 0):.1f} s",
             _fit_line("latency", profile.latency.fit)]
    if prov.get("truncated_by_budget"):
        lines.append(f"budget reached: stopped after {prov.get('rounds_completed')} of "
                     f"{prov.get('grid', {}).get('rounds')} rounds; "
                     f"{sum(s.get('reason') == 'time budget' for s in prov.get('skipped', []))} points never measured")
    lines += _power_lines(profile.power, profile.power.source, path)
    return "\n".join(lines)


def _power_lines(pw, label: str, path) -> list[str]:
    """The closing lines of a fit summary: the power model (or why there is none) and the file."""
    lines = [f"power ({label}): {power_terms(pw)}", _fit_line("power", pw.fit)] if pw.available else \
        [f"power: unavailable ({pw.reason})"]
    return lines + [f"wrote {path}" if path is not None else "profile not written"]


def power_terms(pw) -> str:
    """The watts of a power model: the activity model's (idle, compute, memory) or the phase model's."""
    def w(v, digits: int = 1) -> str:
        return "n/a" if v is None else f"{v:.{digits}f} W"
    if pw.compute_w is not None or pw.memory_w is not None:
        text = f"idle {w(pw.idle_w)}, compute {w(pw.compute_w)}, memory {w(pw.memory_w)}"
    else:
        text = (f"idle {w(pw.idle_w)}, prefill {w(pw.prefill_w)}, decode {w(pw.decode_base_w)} + "
                f"{w(pw.decode_log2_batch_w, 2)} x log2(batch)")
    return text + ("" if pw.max_w is None else f", max {pw.max_w:.0f} W")


def require_torch(command: str) -> None:
    """Measuring needs torch, which the light install leaves out: say how to add it."""
    import importlib.util
    if importlib.util.find_spec("torch") is None:
        raise AgentwattError(f"{command}: torch is not installed: expected pip install torch==2.13.0 && "
                             f"pip install 'agentwatt[calibrate]'")


_SWEEP_OPTIONS = ("preset", "out", "budget_minutes", "seed", "threads", "progress", "device")


@click.group("calibrate", invoke_without_command=True)
@click.option("--preset", default=None, metavar="NAME", help=f"Model shape: {', '.join(PRESETS)}.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--out", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Profile JSON file to write (atomically).")
@click.option("--budget-minutes", type=float, default=None, help="Stop adding sweep points after this long.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds weights, inputs and point order.")
@click.option("--threads", type=int, default=None,
              help="torch threads (default 1 on CPU: steadier on a shared machine).")
@click.option("--progress/--no-progress", default=True, help="Progress bar (only on a terminal).")
@click.pass_context
def calibrate_cmd(ctx: click.Context, preset: str | None, device: str, out: Path | None, budget_minutes: float | None,
                  seed: int, threads: int | None, progress: bool) -> None:
    """Measure prefill/decode latency (and energy, where a meter exists) and fit a profile.

    \b
    agentwatt calibrate --preset tiny --device cpu --out P.json     measure a profile
    agentwatt calibrate transfer P.json --to h100 --model ... --tp N  scale it to another GPU/model
    agentwatt calibrate check P.json                                  serve for real, compare with the simulator
    agentwatt calibrate fit-trace STEPS.csv --model-shape M --gpu G --out P.json   fit a recorded step trace
    """
    if ctx.invoked_subcommand is not None:
        given = [f"--{k.replace('_', '-')}" for k in _SWEEP_OPTIONS
                 if ctx.get_parameter_source(k) not in (None, click.core.ParameterSource.DEFAULT)]
        if given:
            raise InputError(f"calibrate {ctx.invoked_subcommand}: {', '.join(given)}: sweep options "
                             f"(agentwatt calibrate --preset ...): expected them without a subcommand")
        return
    missing = [f for f, v in (("--preset", preset), ("--out", out)) if v is None]
    if missing:
        raise InputError(f"calibrate: missing {' and '.join(missing)}: expected e.g. agentwatt calibrate --preset tiny "
                         f"--device cpu --out tiny.json (or a subcommand: transfer, check)")
    require_torch("calibrate")
    from agentwatt.calibrate.run import calibrate

    profile = calibrate(preset, device, out, budget_minutes=budget_minutes, seed=seed, progress=progress,
                        threads=threads)
    click.echo(summarize(profile, out))


@calibrate_cmd.command("transfer")
@click.argument("profile", metavar="PROFILE")
@click.option("--to", "to", required=True, metavar="GPU",
              help="Target GPU: a catalog key (agentwatt calibrate gpus), or local-cpu for a CPU profile.")
@click.option("--model", default=None, metavar="NAME", help="Target model shape (default: the profile's).")
@click.option("--tp", type=int, default=1, show_default=True, help="Tensor-parallel GPUs per replica.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Transferred profile JSON file to write (atomically).")
def transfer_cmd(profile: str, to: str, model: str | None, tp: int, out: Path) -> None:
    """Scale PROFILE (a file or a bundled name) to another GPU, model shape and TP degree by roofline."""
    from agentwatt.core.profile import load_profile, save_profile
    from agentwatt.calibrate.transfer import transfer_profile

    src = load_profile(profile)
    result = transfer_profile(src, to, model=model, tp=tp, where=profile)
    save_profile(result, out)
    click.echo(summarize_transfer(result, out))


@calibrate_cmd.command("check")
@click.argument("profile", metavar="PROFILE")
@click.option("--device", default=None, help="cpu, cuda or cuda:N (default: the profile's device).")
@click.option("--minutes", type=float, default=2.0, show_default=True, help="Arrivals for this long.")
@click.option("--rate", type=float, default=None, help="Requests per second (default: a mean decode batch of "
                                                       "a quarter of max-num-seqs, from the profile).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds arrivals, lengths and prompts.")
@click.option("--prompt-tokens", type=int, default=128, show_default=True, help="Mean prompt length.")
@click.option("--output-tokens", type=int, default=64, show_default=True, help="Mean output length.")
@click.option("--lengths", type=click.Choice(["lognormal", "fixed"]), default="lognormal", show_default=True)
@click.option("--max-num-seqs", type=int, default=None, help="Default: the largest decode batch the profile measured.")
@click.option("--max-num-batched-tokens", type=int, default=None,
              help="Step token budget. Default: the longest prompt the profile measured.")
@click.option("--clock", type=click.Choice(["auto", "virtual", "wall"]), default="auto", show_default=True,
              help="virtual: advance by timed step CPU time (one-thread CPU); wall: real time.")
@click.option("--out", default=None, type=click.Path(dir_okay=False, path_type=Path), help="Report JSON to write.")
@click.option("--steps", "steps_out", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the serving loop's step trace (CSV, the format fit-trace reads).")
@click.option("--progress/--no-progress", default=True, help="Progress bar (only on a terminal).")
def check_cmd(profile: str, device: str | None, minutes: float, rate: float | None, seed: int, prompt_tokens: int,
              output_tokens: int, lengths: str, max_num_seqs: int | None, max_num_batched_tokens: int | None,
              clock: str, out: Path | None, steps_out: Path | None, progress: bool) -> None:
    """Serve generated requests for real with PROFILE's model on its device, replay them in the simulator
    with PROFILE, and print the errors (latency p50/p99, energy per request, power series); beside them, a
    profile fitted to the first half of the loop's own step trace, checked on the rest."""
    require_torch("calibrate check")
    from agentwatt.validate.check import CheckSettings, check, summarize_check

    for flag, v in (("--max-num-seqs", max_num_seqs), ("--max-num-batched-tokens", max_num_batched_tokens)):
        if v is not None and v < 1:
            raise InputError(f"{flag} = {v}: expected an integer >= 1")
    settings = CheckSettings(minutes=minutes, rate_per_s=rate, seed=seed, prompt_tokens=prompt_tokens,
                             output_tokens=output_tokens, lengths=lengths, max_num_seqs=max_num_seqs,
                             max_num_batched_tokens=max_num_batched_tokens, clock=clock)
    report = check(profile, device, settings, out, progress=progress, steps_out=steps_out)
    click.echo(summarize_check(report))
    if out is not None:
        click.echo(f"wrote {out}")
    if steps_out is not None:
        click.echo(f"wrote {steps_out}")


@calibrate_cmd.command("fit-trace")
@click.argument("steps", metavar="STEPS.csv", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Profile JSON file to write (atomically).")
@click.option("--name", default=None, help="Profile name (default: the trace file's stem + '-trace').")
@click.option("--model-shape", "model_shape", required=True, metavar="PROFILE|MODEL",
              help="The served model's shape: a profile (file or bundled name; its hardware too, unless --gpu) "
                   "or a catalog model name (agentwatt profiles).")
@click.option("--gpu", default=None, metavar="KEY", help="The engine's GPU: a catalog key (agentwatt calibrate gpus); "
                                                         "its memory sizes the KV cache, its TDP caps the power.")
@click.option("--tp", type=int, default=None, help="GPUs per replica (default: the shape profile's, else 1).")
@click.option("--idle-w", "idle_w", type=float, default=None,
              help="Per-GPU idle watts with the model loaded (default: fitted from the metered steps).")
def fit_trace_cmd(steps: Path, out: Path, name: str | None, model_shape: str, gpu: str | None, tp: int | None,
                  idle_w: float | None) -> None:
    """Fit a profile to STEPS.csv, a recorded trace of engine steps (README: "Calibrate from a step trace")."""
    from agentwatt.calibrate.fit_trace import fit_trace
    from agentwatt.core.profile import save_profile
    from agentwatt.core.steptrace import read_step_trace

    if tp is not None and tp < 1:
        raise InputError(f"--tp = {tp}: expected an integer >= 1")
    if idle_w is not None and not idle_w >= 0:
        raise InputError(f"--idle-w = {idle_w}: expected a number >= 0")
    shape, hardware, shape_from = resolve_shape(model_shape, gpu, tp)
    trace = read_step_trace(steps)
    prof = fit_trace(trace, name=name or f"{steps.stem}-trace", model=shape, hardware=hardware, idle_w=idle_w,
                     model_from=shape_from)
    save_profile(prof, out)
    click.echo(summarize_fit_trace(prof, out))


def resolve_shape(model_shape: str, gpu: str | None, tp: int | None):
    """(ModelShape, Hardware, where the shape came from) for ``fit-trace``: a profile gives both (its
    hardware unless ``--gpu``); a catalog model name needs ``--gpu``."""
    from agentwatt.core.gpus import get_gpu
    from agentwatt.core.models import catalog, get_model
    from agentwatt.core.profile import Hardware, ModelShape, bundled_profile_names, load_profile

    src_hw = spec = None
    if model_shape in bundled_profile_names() or model_shape.endswith(".json") or Path(model_shape).is_file():
        prof = load_profile(model_shape)
        shape, src_hw, shape_from = prof.model, prof.hardware, f"profile {model_shape}"
    else:
        try:
            spec = get_model(model_shape)
        except InputError:
            spec = None
    if src_hw is None and spec is None:
        try:   # a derived profile name (<model>_[<N>x]<gpu>[_fp8], agentwatt profiles)
            prof = load_profile(model_shape)
        except InputError:
            raise InputError(f"--model-shape {model_shape!r}: neither a profile nor a catalog model: expected a "
                             f"profile file, a bundled or derived profile name ({', '.join(bundled_profile_names())}, "
                             f"...) or one of {', '.join(sorted(catalog()))}") from None
        shape, src_hw, shape_from = prof.model, prof.hardware, f"profile {model_shape}"
    elif src_hw is None:
        shape = ModelShape(name=spec.name, n_layers=spec.n_layers, hidden_size=spec.hidden_size, n_heads=spec.n_heads,
                           n_kv_heads=spec.n_kv_heads, head_dim=spec.head_dim,
                           intermediate_size=spec.intermediate_size, vocab_size=spec.vocab_size,
                           n_params=spec.n_params, dtype_bytes=2)
        shape_from = f"model catalog {spec.name} (bf16)"
    if gpu is not None:
        from agentwatt.core.gpus import GPUS
        try:
            g = get_gpu(gpu)
        except InputError:
            raise InputError(f"--gpu {gpu!r}: unknown GPU: expected one of {', '.join(GPUS)}") from None
        if g.mem_gib is None:
            raise InputError(f"--gpu {gpu!r}: the catalog gives no memory size: expected a GPU with one")
        hw = Hardware(device_name=g.name, kind="gpu", tp=tp or (src_hw.tp if src_hw else 1),
                      mem_gib_per_device=g.mem_gib, tdp_w_per_device=g.tdp_w)
    elif src_hw is not None:
        hw = src_hw if tp is None else Hardware(**{**src_hw.__dict__, "tp": tp})
    else:
        raise InputError(f"--model-shape {model_shape!r} is a model name: expected --gpu KEY too (agentwatt "
                         f"calibrate gpus), or a profile as --model-shape to take its hardware")
    return shape, hw, shape_from


def summarize_fit_trace(p: Profile, path: Path | None) -> str:
    prov, lat = p.provenance, p.latency
    tr = prov["step_trace"]
    lines = [f"fitted {p.name} ({p.model.name} on {p.hardware.device_name} x{p.hardware.tp}) to {tr['file']}: "
             f"{tr['rows']} steps over {tr['span_s']:.1f} s ({tr['rows_fit']} fit, last {tr['rows_holdout']} held out)"]
    for form, f in prov["forms"].items():
        lines.append(f"  {form:<16} MAPE {_pct(f['mape'])} (max {_pct(f['max_ape'])}); held out MAPE "
                     f"{_pct(f['holdout_mape'])} (max {_pct(f['holdout_max_ape'])})"
                     + ("   <- chosen" if form == prov["form"] else ""))
    text = (f"step model: overhead {lat.overhead_s * 1e3:.3f} ms + {lat.prefill_token_s * 1e6:.3f} us/prompt token "
            f"+ {lat.prefill_attn_s * 1e9:.4f} ns/attention unit + {lat.decode_seq_s * 1e6:.3f} us/decoding seq "
            f"+ {lat.decode_ctx_s * 1e9:.3f} ns/KV token")
    if lat.weight_s or lat.token_s:
        text += (f" + linear: weights {lat.weight_s * 1e3:.3f} ms, {lat.token_s * 1e6:.3f} us/token, "
                 f"overlap p {lat.overlap_p:.2f}")
    lines.append(text)
    lines += _power_lines(p.power, f"step trace, {tr['rows_with_energy']} metered steps", path)
    return "\n".join(lines)


@calibrate_cmd.command("gpus")
def gpus_cmd() -> None:
    """List the GPU catalog the transfer uses (numbers and their sources)."""
    from agentwatt.core.gpus import GPUS

    def f(v, unit=""):
        return "n/a" if v is None else f"{v:g}{unit}"
    for g in GPUS.values():
        click.echo(f"{g.key:<10} {g.name:<26} HBM {f(g.hbm_gbps, ' GB/s'):<12} BF16 {f(g.bf16_dense_tflops, ' TFLOP/s'):<16}"
                   f" {f(g.mem_gib, ' GiB'):<8} TDP {f(g.tdp_w, ' W'):<8} idle {f(g.idle_w, ' W'):<6} "
                   f"{g.interconnect} {f(g.interconnect_gbps, ' GB/s')}")
    click.echo("local-cpu  a CPU profile's own device, with the peaks its calibration measured (provenance.cpu_peaks)")


def summarize_transfer(p: Profile, path: Path | None) -> str:
    prov, lat = p.provenance, p.latency
    src = prov["transferred_from"]
    band = prov["error_band"]
    eff = prov["efficiency"]
    lines = [f"transferred {src['name']} ({src['device']} x{src['tp']}, {src['model']}) -> {p.name} "
             f"({p.hardware.device_name} x{p.hardware.tp}, {p.model.name})",
             f"efficiencies kept: prefill {eff['prefill_token']:.3f}, attention {eff['prefill_attn']:.3f}, "
             f"decode {eff['decode_seq']:.3f} of peak FLOP/s; memory {eff['hbm_bandwidth']:.3f} of bandwidth; "
             f"overhead floor {eff['overhead_floor_s'] * 1e3:.3f} ms",
             f"step model: overhead {lat.overhead_s * 1e3:.3f} ms + {lat.prefill_token_s * 1e6:.3f} us/prompt token "
             f"+ {lat.prefill_attn_s * 1e9:.4f} ns/attention unit + {lat.decode_seq_s * 1e6:.3f} us/decoding seq "
             f"+ {lat.decode_ctx_s * 1e9:.3f} ns/KV token",
             f"error band: ±{100 * band['combined_mape']:.0f} % MAPE (max {100 * band['max_ape']:.0f} %): "
             + "; ".join(band["applies"])]
    pw = p.power
    lines.append(f"power (transfer): {power_terms(pw)}" if pw.available else f"power: unavailable ({pw.reason})")
    lines += [f"note: {n}" for n in prov["notes"] if n.startswith("CAVEAT")]
    lines.append(f"wrote {path}" if path is not None else "profile not written")
    return "\n".join(lines)
