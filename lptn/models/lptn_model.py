"""The LPTN training model: the maths of one training step, nothing about time.

It owns the generator (``network_g``), the optional critic (``network_d``), their optimisers,
learning-rate schedules, AMP loss scalers, losses and the generator's moving average; the
engine's loop decides when to step, log, validate and save. The step (generator, critic,
gradient penalty), mixed precision, DDP, speed options, EMA and the non-finite-loss rule:
docs/training.md, "One training step".
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from lptn.archs import build_network
from lptn.archs.weight_loading import load_network_weights
from lptn.losses import build_gradient_penalty, build_loss
from lptn.models import MODEL_REGISTRY, weights_options
from lptn.models.lr_scheduler import IterationSchedule, build_scheduler
from lptn.models.optimizers import build_optimizer
from lptn.platform.checkpoint_io import ARCH_KEY, arch_entry, bare_module, save_atomic
from lptn.platform.logger import get_logger
from lptn.platform.train_settings import TrainingSettings
from lptn.platform.train_speed import check_compile_support, train_speed_options


@dataclass
class StepResult:
    """What one :meth:`LPTNModel.optimize_parameters` call did.

    Attributes:
        losses: every loss term as a float (``l_g_pix``, ``l_g_gan``, ``l_g_lut_smooth``,
            ``l_g_lut_mono``, ``l_d_real``,
            ``l_d_fake``, ``l_d_gp``, ``out_d_real``, ``out_d_fake``: those that were computed).
        skipped: networks (``'net_g'``, ``'net_d'``) whose update was skipped because one of
            their losses was not finite.
        overflow: networks whose fp16 step the loss scaler skipped (an ordinary AMP event).
    """

    losses: Dict[str, float]
    skipped: Tuple[str, ...] = ()
    overflow: Tuple[str, ...] = ()

    @property
    def finite(self) -> bool:
        return not self.skipped

    def nonfinite_terms(self) -> Dict[str, float]:
        return {k: v for k, v in self.losses.items() if not math.isfinite(v)}


def _cpu_state(net: nn.Module) -> Dict[str, torch.Tensor]:
    """The network's state dict (unwrapped) as detached CPU tensors, for saving."""
    return OrderedDict((k, v.detach().cpu()) for k, v in bare_module(net).state_dict().items())


class FixedLR(IterationSchedule):
    """The base rate at every iteration (no ``train.scheduler``); warm-up still applies."""

    def lr_at(self, base_lr: float, it: int) -> float:
        return base_lr


@MODEL_REGISTRY.register
class LPTNModel:
    """Generator (+ critic) training for LPTN; see the module docstring for the step.

    Args:
        opt: the parsed options (``network_g``, ``network_d``, ``train``, ``path``...).
        runtime: device and precision (``runtime.device``, ``autocast()``, ``grad_scaler()``).

    Option keys read here (under ``train``): ``optim_g``, ``optim_d``, ``scheduler``,
    ``pixel_opt``, ``gan_opt``, ``gp_opt``, ``lut_smooth_opt`` / ``lut_mono_opt`` (the 3D-LUT
    regularisers, on ``network_g.basis_luts``), ``net_d_iters`` (1), ``net_d_init_iters`` (0),
    ``pixel_target`` (``input`` for unpaired data, else ``gt``), ``d_step_input``
    (``recompute``), ``channels_last`` (false), ``compile`` (false; true or a torch.compile
    mode), ``ema_decay`` (0 = off); ``optim_*.fused`` passes to torch (see the module
    docstring). Under ``path``:
    ``pretrain_network_g``/``_d``, ``strict_load_g``/``_d``, ``param_key_g``/``_d``.
    """

    def __init__(self, opt: Dict[str, Any], runtime: Any) -> None:
        self.opt = opt
        self.runtime = runtime
        self.device: torch.device = runtime.device
        train_opt = opt.get("train")
        if not isinstance(train_opt, dict):
            raise ValueError(
                "train: LPTNModel needs a 'train' block (use LPTNTestModel for inference)"
            )
        self.train_opt = train_opt
        # The schema's defaults, ranges and choices: the one check of these keys.
        self.settings = TrainingSettings.from_options(opt)
        # channels_last / compile: decided here once, applied by the helper's methods only.
        self.speed = train_speed_options(opt)
        check_compile_support(self.speed, self.device)

        self.net_g = self._prepare_net(
            build_network(opt["network_g"], "network_g", **weights_options(opt, "g"))
        )
        self.net_d: Optional[nn.Module] = (
            self._prepare_net(
                build_network(opt["network_d"], "network_d", **weights_options(opt, "d"))
            )
            if opt.get("network_d")
            else None
        )
        self._build_losses(train_opt)

        self.pixel_target = self.settings.pixel_target
        self.d_step_input = self.settings.d_step_input
        self.net_d_iters = self.settings.net_d_iters
        self.net_d_init_iters = self.settings.net_d_init_iters

        optimizers: Dict[str, torch.optim.Optimizer] = {}
        for name, net in self.networks().items():
            key = f"optim_{name[-1]}"
            if not isinstance(train_opt.get(key), dict):
                raise ValueError(
                    f"train.{key}: required to train {name} (e.g. "
                    f"{{type: Adam, lr: 1e-4, betas: [0.9, 0.99]}})"
                )
            optimizers[name] = build_optimizer(net.parameters(), train_opt[key], f"train.{key}")
        # The runtime's precision backend may cast the networks and patch the optimisers;
        # then, with several processes, each network is wrapped for gradient averaging.
        nets, self.optimizers, self.scalers = runtime.prepare_training(self.networks(), optimizers)
        find_unused: bool = opt["find_unused_parameters"]
        self.net_g = runtime.distribute(nets["net_g"], find_unused)
        if self.net_d is not None:
            self.net_d = runtime.distribute(nets["net_d"], find_unused)
        # Compile after DDP (torch's order); the critic stays eager (double backward of the GP).
        self.net_g = self.speed.compile(self.net_g)
        self.ema_decay = self.settings.ema_decay
        self.net_g_ema: Optional[AveragedModel] = None
        if self.ema_decay > 0:
            generator = bare_module(self.net_g)
            self.net_g_ema = AveragedModel(
                generator, multi_avg_fn=get_ema_multi_avg_fn(self.ema_decay)
            )
            self.net_g_ema.requires_grad_(False).eval()
            # The first update copies: the average starts at the initial weights.
            self.net_g_ema.update_parameters(generator)
        self.schedulers: Dict[str, IterationSchedule] = {}
        sched_opt = train_opt.get("scheduler")
        for name, optimizer in self.optimizers.items():
            self.schedulers[name] = (
                build_scheduler(optimizer, sched_opt, "train.scheduler")
                if sched_opt
                else FixedLR(optimizer)
            )

        self.lq: Optional[torch.Tensor] = None
        self.gt: Optional[torch.Tensor] = None
        self.ref: Optional[torch.Tensor] = None
        self.output: Optional[torch.Tensor] = None
        #: the generator output the critic judged in the last step (detached), for inspection
        self.d_fake: Optional[torch.Tensor] = None

    # ----------------------------------------------------------------------------- building
    def _prepare_net(self, net: nn.Module) -> nn.Module:
        """A built network on the device, in training mode, with the speed options applied."""
        return self.speed.prepare_network(net.to(self.device).train())

    def _build_losses(self, train_opt: Dict[str, Any]) -> None:
        pixel_opt, gan_opt, gp_opt = (train_opt.get(k) for k in ("pixel_opt", "gan_opt", "gp_opt"))
        self.cri_pix = (
            build_loss(pixel_opt, "train.pixel_opt").to(self.device) if pixel_opt else None
        )
        if self.net_d is not None and not gan_opt:
            raise ValueError(
                "train.gan_opt: required when network_d is set (e.g. "
                "{type: GANLoss, gan_type: standard, loss_weight: 1})"
            )
        if gan_opt and self.net_d is None:
            raise ValueError(
                "train.gan_opt is set but network_d is not: add a network_d block "
                "(e.g. {type: Discriminator}) or remove gan_opt for pixel training"
            )
        if gp_opt and self.net_d is None:
            raise ValueError(
                "train.gp_opt is set but network_d is not: the gradient penalty "
                "trains the discriminator"
            )
        self.cri_gan = build_loss(gan_opt, "train.gan_opt").to(self.device) if gan_opt else None
        self.cri_gp = build_gradient_penalty(gp_opt, "train.gp_opt") if gp_opt else None
        # Regularisers on the generator's own LUTs (ImageAdaptive3DLUT), not on its output.
        self.cri_lut: Dict[str, nn.Module] = {}
        for key, term in (("lut_smooth_opt", "l_g_lut_smooth"), ("lut_mono_opt", "l_g_lut_mono")):
            if train_opt.get(key):
                if not isinstance(getattr(self.net_g, "basis_luts", None), torch.Tensor):
                    raise ValueError(
                        f"train.{key}: regularises basis LUTs, but network_g "
                        f"({type(self.net_g).__name__}) has none (use ImageAdaptive3DLUT)"
                    )
                self.cri_lut[term] = build_loss(train_opt[key], f"train.{key}").to(self.device)
        if self.cri_pix is None and self.cri_gan is None:
            raise ValueError(
                "train: no generator loss; set train.pixel_opt and/or network_d with train.gan_opt"
            )

    def networks(self) -> Dict[str, nn.Module]:
        """``{'net_g': G}`` plus ``'net_d'`` when there is a critic (wrapped in
        DistributedDataParallel when training with several processes)."""
        nets = {"net_g": self.net_g}
        if self.net_d is not None:
            nets["net_d"] = self.net_d
        return nets

    # ------------------------------------------------------------------------------- data
    def feed_data(self, batch: Dict[str, Any]) -> None:
        """Take a training batch: ``lq`` and ``gt`` and/or ``ref``, (N, 3, H, W) in [0, 1]."""
        if "lq" not in batch:
            raise KeyError(f"training batch has no 'lq' entry (keys: {', '.join(batch)})")

        def to_device(key: str) -> Optional[torch.Tensor]:
            value = batch.get(key)
            return None if value is None else self.speed.batch_to(value, self.device)

        self.lq, self.gt, self.ref = to_device("lq"), to_device("gt"), to_device("ref")

    def _pixel_target(self) -> torch.Tensor:
        if self.pixel_target == "input":
            assert self.lq is not None  # feed_data always sets it
            return self.lq
        if self.gt is None:
            raise KeyError(
                "train.pixel_target is 'gt' but the training batch has no 'gt' "
                "(UnPairedImageDataset gives 'lq' and 'ref'); use pixel_target: input "
                "or a paired dataset"
            )
        return self.gt

    def _real_images(self) -> torch.Tensor:
        real = self.ref if self.ref is not None else self.gt
        if real is None:
            raise KeyError(
                "the discriminator needs target-domain images but the training batch "
                "has neither 'ref' nor 'gt'"
            )
        return real

    # ------------------------------------------------------------------------------- step
    def generator_updates_at(self, current_iter: int) -> bool:
        """Whether iteration ``current_iter`` (1-based) updates the generator."""
        return current_iter % self.net_d_iters == 0 and current_iter > self.net_d_init_iters

    def optimize_parameters(self, current_iter: int) -> StepResult:
        """One training step on the batch given to :meth:`feed_data`."""
        if self.lq is None:
            raise RuntimeError("optimize_parameters: call feed_data first")
        self.speed.begin_step()
        losses: Dict[str, float] = {}
        skipped: List[str] = []
        overflow: List[str] = []
        fake: Optional[torch.Tensor] = None
        if self.generator_updates_at(current_iter):
            out = self._generator_step(losses, skipped, overflow)
            if self.d_step_input == "reuse":
                fake = out
        if self.net_d is not None:
            if fake is None:
                with torch.no_grad(), self.runtime.autocast():
                    fake = self.net_g(self.lq)
                self.output = fake.detach()
            self.d_fake = fake.detach()
            self._discriminator_step(fake.detach().float(), losses, skipped, overflow)
        if self.net_g_ema is not None:
            # Every step, as BasicSR's model_ema (a skipped update leaves the weights as they
            # were, and the average moves towards them).
            self.net_g_ema.update_parameters(bare_module(self.net_g))
        return StepResult(losses, tuple(skipped), tuple(overflow))

    def _generator_step(
        self, losses: Dict[str, float], skipped: List[str], overflow: List[str]
    ) -> torch.Tensor:
        optimizer, scaler = self.optimizers["net_g"], self.scalers["net_g"]
        if self.net_d is not None:
            self.net_d.requires_grad_(False)  # the generator loss does not train the critic
        optimizer.zero_grad(set_to_none=True)
        terms: Dict[str, torch.Tensor] = {}
        with self.runtime.autocast():
            out = self.net_g(self.lq)
            if self.cri_pix is not None:
                terms["l_g_pix"] = self.cri_pix(out, self._pixel_target())
            if self.cri_gan is not None:
                assert self.net_d is not None  # _build_losses: gan_opt needs network_d
                terms["l_g_gan"] = self.cri_gan(self.net_d(out), True, is_disc=False)
            if self.cri_lut:
                generator = bare_module(self.net_g)
                for term, loss in self.cri_lut.items():
                    terms[term] = (
                        loss(generator.basis_luts, generator.mix_weights)
                        if term == "l_g_lut_smooth"
                        else loss(generator.basis_luts)
                    )
        total = sum(terms.values())
        scaler.backward(total)
        # One host sync for all terms, after the backward pass has been queued; with several
        # processes the values are averaged over them, so every process takes the same
        # skip / step decision below and logs the same numbers.
        values = self.runtime.mean_over_ranks(
            torch.stack([t.detach().float() for t in terms.values()])
        ).tolist()
        losses.update(zip(terms, values))
        if all(math.isfinite(v) for v in values):
            self._step(optimizer, scaler, "net_g", overflow)
        else:
            optimizer.zero_grad(set_to_none=True)
            skipped.append("net_g")
        self.output = out.detach()
        return out.detach()

    def _discriminator_step(
        self, fake: torch.Tensor, losses: Dict[str, float], skipped: List[str], overflow: List[str]
    ) -> None:
        assert self.net_d is not None and self.cri_gan is not None
        optimizer, scaler = self.optimizers["net_d"], self.scalers["net_d"]
        real = self._real_images()
        self.net_d.requires_grad_(True)
        optimizer.zero_grad(set_to_none=True)
        terms: Dict[str, torch.Tensor] = {}
        with self.runtime.autocast():
            real_pred = self.net_d(real)
            fake_pred = self.net_d(fake)
            terms["l_d_real"] = self.cri_gan(real_pred, True, is_disc=True)
            terms["l_d_fake"] = self.cri_gan(fake_pred, False, is_disc=True)
            if self.cri_gp is not None:
                # The penalty's inner gradient is taken on the scaled score (fp16), see
                # lptn.losses.gradient_penalty; the value returned is unscaled.
                terms["l_d_gp"] = self.cri_gp(
                    self.net_d, real, fake, scale=scaler.gp_scale(self.device)
                )
        total = sum(terms.values())
        scaler.backward(total)
        monitors = [real_pred.detach().float().mean(), fake_pred.detach().float().mean()]
        values = self.runtime.mean_over_ranks(
            torch.stack([t.detach().float() for t in terms.values()] + monitors)
        ).tolist()
        losses.update(zip(list(terms) + ["out_d_real", "out_d_fake"], values))
        finite = {
            k: math.isfinite(v) for k, v in zip(list(terms) + ["out_d_real", "out_d_fake"], values)
        }
        if all(finite.values()):
            self._step(optimizer, scaler, "net_d", overflow)
        elif (
            scaler.is_enabled()
            and not finite.get("l_d_gp", True)
            and all(v for k, v in finite.items() if k != "l_d_gp")
        ):
            # Only the scale-dependent term overflowed: an fp16 range problem, not divergence.
            optimizer.zero_grad(set_to_none=True)
            scaler.back_off()
            overflow.append("net_d")
        else:
            optimizer.zero_grad(set_to_none=True)
            skipped.append("net_d")

    @staticmethod
    def _step(
        optimizer: torch.optim.Optimizer, scaler: Any, name: str, overflow: List[str]
    ) -> None:
        if scaler.step_optimizer(optimizer):
            overflow.append(name)

    # ----------------------------------------------------------------------- learning rate
    def update_learning_rate(self, current_iter: int, warmup_iter: int = -1) -> None:
        """Set every optimiser's rates for iteration ``current_iter`` (closed form)."""
        for schedule in self.schedulers.values():
            schedule.apply(current_iter, warmup_iter)

    def get_current_learning_rate(self) -> Dict[str, float]:
        """``{'lr_g': ..., 'lr_d': ...}``: the first parameter group's rate of each optimiser."""
        return {
            f"lr_{name[-1]}": opt.param_groups[0]["lr"] for name, opt in self.optimizers.items()
        }

    # ---------------------------------------------------------------------------- inference
    @torch.no_grad()
    def enhance(self, lq: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] on any device -> float32 output on the runtime's device, not
        clamped. Runs in float32 (no autocast), so validation measures what test.py measures.
        With ``train.ema_decay`` the moving average runs, as in BasicSR."""
        # The bare network: no DDP hooks, so processes may validate different numbers of images;
        # not compiled, so validation images of any size never trigger a recompile.
        net = self.net_g_ema.module if self.net_g_ema is not None else bare_module(self.net_g)
        was_training = net.training
        net.eval()
        try:
            return net(self.speed.batch_to(lq, self.device)).float()
        finally:
            net.train(was_training)

    # ------------------------------------------------------------------------ checkpoints
    def save_networks(self, models_dir: str | Path, label: str | int) -> List[Path]:
        """Write ``net_g_{label}.pth`` (and ``net_d_{label}.pth``) as ``{'params': sd}``
        (plus ``'params_ema'`` in the generator's file with EMA), atomically; returns the
        paths."""
        paths = []
        for name in self.networks():
            path = Path(models_dir) / f"{name}_{label}.pth"
            self.save_network(name, path)
            paths.append(path)
        return paths

    def save_network(self, name: str, path: str | Path) -> None:
        """Write one network's file (``net_g`` or ``net_d``) as :meth:`save_networks` does."""
        entries: Dict[str, Any] = {"params": _cpu_state(self.networks()[name])}
        if name == "net_g" and self.net_g_ema is not None:
            entries["params_ema"] = _cpu_state(self.net_g_ema.module)
        # The file names its architecture, so every tool rebuilds it without options.
        entries[ARCH_KEY] = arch_entry(self.opt[name.replace("net_", "network_")])
        save_atomic(entries, path)

    def load_networks(self, models_dir: str | Path, label: str | int) -> None:
        """Load ``net_g_{label}.pth`` (and ``net_d_{label}.pth``) strictly (resume), and the
        generator's ``params_ema`` when EMA is on."""
        for name, net in self.networks().items():
            load_network_weights(
                net, Path(models_dir) / f"{name}_{label}.pth", strict=True, param_key="params"
            )
        if self.net_g_ema is not None:
            path = Path(models_dir) / f"net_g_{label}.pth"
            entries = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(entries, dict) and isinstance(entries.get("params_ema"), dict):
                self.net_g_ema.module.load_state_dict(entries["params_ema"], strict=True)
            else:
                get_logger().warning(
                    "%s has no params_ema (saved without train.ema_decay): the moving "
                    "average starts from its params",
                    path,
                )
                self.net_g_ema.module.load_state_dict(bare_module(self.net_g).state_dict())

    def state_dict(self) -> Dict[str, Any]:
        """Optimiser, schedule and loss-scaler states (tensors and plain containers only), and
        with EMA its update count (its weights are in the ``net_g`` file)."""
        state: Dict[str, Any] = {
            "optimizers": {k: v.state_dict() for k, v in self.optimizers.items()},
            "schedulers": {k: v.state_dict() for k, v in self.schedulers.items()},
            "scalers": {k: v.state_dict() for k, v in self.scalers.items()},
        }
        if self.net_g_ema is not None:
            state["ema"] = {"n_averaged": self.net_g_ema.n_averaged.detach().cpu().clone()}
        return state

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (networks are loaded separately)."""
        for part in ("optimizers", "schedulers"):
            have, want = set(state.get(part, {})), set(self.optimizers)
            if have != want:
                raise ValueError(
                    f"training state holds {part} for {sorted(have)} but this model "
                    f"trains {sorted(want)} (network_d added or removed?)"
                )
        for name in self.optimizers:
            self.optimizers[name].load_state_dict(state["optimizers"][name])
            self.schedulers[name].load_state_dict(state["schedulers"][name])
            scaler_state = (state.get("scalers") or {}).get(name) or {}
            scaler = self.scalers[name]
            if scaler.is_enabled() and scaler_state:
                scaler.load_state_dict(scaler_state)
            elif scaler.is_enabled():
                get_logger().warning(
                    "the training state has no fp16 loss-scaler state for %s "
                    "(it was saved without fp16): starting a fresh scale",
                    name,
                )
        ema_state = state.get("ema")
        if self.net_g_ema is not None and ema_state:
            self.net_g_ema.n_averaged.copy_(ema_state["n_averaged"])

    def describe(self) -> str:
        """One line per network: type and parameter count."""
        lines = []
        for name, net in self.networks().items():
            count = sum(p.numel() for p in bare_module(net).parameters())
            lines.append(f"{name}: {type(bare_module(net)).__name__}, {count:,} parameters")
        if self.speed.channels_last or self.speed.compile_mode is not None:
            lines.append(f"speed options: {self.speed.describe()}")
        if self.net_g_ema is not None:
            lines.append(f"EMA of net_g: decay {self.ema_decay} (validation runs the average)")
        return "\n".join(lines)


__all__ = [
    "LPTNModel",
    "StepResult",
    "FixedLR",
]
