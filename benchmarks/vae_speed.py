"""VAE speed, in one run, on the same MLP (784-300-300-40, tanh, batch 100, Adam 1e-3):

Training throughput (examples / s over whole epochs):
    reparam      reparam.vae.train(...) (the toolkit's loop: schedules, metrics, checkpoint-free;
                 this model takes the fused step of reparam.vae.fused: backward in closed form)
    reparam (autograd)  the same loop with fused=False (loss.backward() through autograd)
    reparam bf16 the same loop with bf16=True: the fused step's wide products in bfloat16 with
                 float32 accumulation, weights, Adam and elementwise math (mixed precision; a
                 different numerics from the float32 rows, so reported in its own column)
    bare loop    a hand-written PyTorch loop (plain reparameterization, BCE-with-logits, analytic KL)
    pythae       pythae's TrainingPipeline / BaseTrainer (bench extra: pip install pythae)

Importance-sampled NLL evaluation (examples / s, k importance samples each; reparam and
batched: best of --rounds interleaved rounds, pythae: one run):
    reparam      reparam.vae.evaluation.log_likelihood (chunks of samples, streaming logsumexp)
    batched      a straightforward batched evaluator in plain PyTorch (nn.Linear / nn.Tanh with
                 the trained weights): batches of 100 examples, one importance sample per
                 forward pass, log-weights stacked to (k, B) then logsumexp
    pythae       pythae's VAE.get_nll (per data point)

    python benchmarks/vae_speed.py --data-dir ../shared/data [--train-n 50000 --epochs 1 --rounds 3
           --eval-n 200 --k 1000] [--skip-pythae]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time

import torch
import torch.nn.functional as F
from torch import nn

from reparam.data import load_dataset
from reparam.vae import VAE, TrainConfig, train
from reparam.vae.evaluation import log_likelihood

HIDDEN, LATENT, BATCH, LR = (300, 300), 40, 100, 1e-3


def bare_loop(x: torch.Tensor, epochs: int, seed: int = 0) -> float:
    torch.manual_seed(seed)
    d = x.shape[1]
    enc = nn.Sequential(nn.Linear(d, 300), nn.Tanh(), nn.Linear(300, 300), nn.Tanh(),
                        nn.Linear(300, 2 * LATENT))
    dec = nn.Sequential(nn.Linear(LATENT, 300), nn.Tanh(), nn.Linear(300, 300), nn.Tanh(),
                        nn.Linear(300, d))
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=LR)
    t0 = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(x.shape[0])
        for i in range(0, x.shape[0], BATCH):
            xb = x[perm[i:i + BATCH]]
            mu, logvar = enc(xb).chunk(2, dim=-1)
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
            rec = F.binary_cross_entropy_with_logits(dec(z), xb, reduction="sum")
            kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
            loss = (rec + kl) / xb.shape[0]
            opt.zero_grad()
            loss.backward()
            opt.step()
    return x.shape[0] * epochs / (time.perf_counter() - t0)


def reparam_train(data, epochs: int, compile: bool = False, fused: bool | None = None,
                  bf16: bool = False) -> tuple[float, VAE]:
    """Examples / s of ``reparam.vae.train``; with ``compile`` one extra first epoch absorbs
    torch.compile's one-off compilation and only the later epochs are timed."""
    cfg = TrainConfig(epochs=epochs + compile, batch_size=BATCH, lr=LR, latent_dim=LATENT,
                      hidden=list(HIDDEN), activation="tanh", eval_samples=1, tensorboard=False,
                      compile=compile, fused=fused, bf16=bf16)
    result = train(cfg, dataset=data, save=False, progress=False)
    assert result.metrics["fused_step"] == (fused is not False and not compile)
    seconds = result.metrics["wall_time_s"] - (result.history[0]["seconds"] if compile else 0.0)
    return data.train.shape[0] * epochs / seconds, result.model


def pythae_train(x: torch.Tensor, epochs: int):
    from pythae.models import VAE as PVAE
    from pythae.models import VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
    from pythae.pipelines import TrainingPipeline
    from pythae.trainers import BaseTrainerConfig

    d = x.shape[1]

    class Enc(BaseEncoder):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(d, 300), nn.Tanh(), nn.Linear(300, 300), nn.Tanh(),
                                     nn.Linear(300, 2 * LATENT))

        def forward(self, x):
            mu, logvar = self.net(x.reshape(x.shape[0], -1)).chunk(2, dim=-1)
            return ModelOutput(embedding=mu, log_covariance=logvar)

    class Dec(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(LATENT, 300), nn.Tanh(), nn.Linear(300, 300),
                                     nn.Tanh(), nn.Linear(300, d), nn.Sigmoid())

        def forward(self, z):
            return ModelOutput(reconstruction=self.net(z))

    model = PVAE(VAEConfig(input_dim=(d,), latent_dim=LATENT, reconstruction_loss="bce"),
                 encoder=Enc(), decoder=Dec())
    with tempfile.TemporaryDirectory() as tmp:
        cfg = BaseTrainerConfig(output_dir=tmp, num_epochs=epochs, per_device_train_batch_size=BATCH,
                                learning_rate=LR, optimizer_cls="Adam", no_cuda=True)
        t0 = time.perf_counter()
        TrainingPipeline(model=model, training_config=cfg)(train_data=x)
        rate = x.shape[0] * epochs / (time.perf_counter() - t0)
    return rate, model


def plain_copy(net: nn.Sequential) -> nn.Sequential:
    """The same layers and weights as plain ``nn`` modules (``nn.Tanh`` for the activation)."""
    return nn.Sequential(*[nn.Tanh() if type(m).__name__ == "Tanh" else m for m in net])


@torch.no_grad()
def batched_nll(model: VAE, x: torch.Tensor, k: int) -> torch.Tensor:
    enc, dec = plain_copy(model.encoder.net), plain_copy(model.decoder.net)
    out = []
    for i in range(0, x.shape[0], 100):
        xb = x[i:i + 100]
        mu, logvar = enc(xb).chunk(2, dim=-1)
        std = torch.exp(0.5 * logvar)
        lws = []
        for _ in range(k):
            z = mu + std * torch.randn_like(mu)
            log_px = -F.binary_cross_entropy_with_logits(dec(z), xb,
                                                         reduction="none").sum(-1)
            log_pz = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
            log_qz = torch.distributions.Normal(mu, std).log_prob(z).sum(-1)
            lws.append(log_px + log_pz - log_qz)
        out.append(-(torch.logsumexp(torch.stack(lws), 0) - math.log(k)))
    return torch.cat(out)


def main() -> None:
    parser = argparse.ArgumentParser(description="VAE training and evaluation speed vs peers")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--train-n", type=int, default=50000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--eval-n", type=int, default=200)
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--pythae-eval-n", type=int, default=20)
    parser.add_argument("--skip-pythae", action="store_true")
    parser.add_argument("--no-bf16", action="store_true", help="skip the bf16 row")
    parser.add_argument("--compile", action="store_true",
                        help="also time reparam with --compile (torch.compile; first epoch untimed)")
    args = parser.parse_args()
    ds = load_dataset("binarized-mnist", data_dir=args.data_dir)
    ds.train = ds.train[:args.train_n]
    ds.test = ds.test[torch.randperm(ds.test.shape[0], generator=torch.Generator().manual_seed(0))]
    x_eval = ds.test[:args.eval_n]
    ds.test = ds.test[:100]
    print(f"binarized MNIST (static), MLP 784-300-300-40 tanh, batch {BATCH}, Adam; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    rows: dict[str, float] = {}
    for _ in range(args.rounds):  # interleaved rounds; the best rate of each trainer counts
        for name, run in (("bare loop", lambda: bare_loop(ds.train, args.epochs)),
                          ("reparam", lambda: reparam_train(ds, args.epochs)[0]),
                          ("reparam (autograd)",
                           lambda: reparam_train(ds, args.epochs, fused=False)[0]),
                          ("reparam bf16", None if args.no_bf16 else
                           lambda: reparam_train(ds, args.epochs, bf16=True)[0]),
                ("reparam --compile", None if not args.compile else
                 lambda: reparam_train(ds, args.epochs, compile=True)[0]),
                          ("pythae", None if args.skip_pythae else
                           lambda: pythae_train(ds.train, args.epochs)[0])):
            if run is not None:
                rows[name] = max(rows.get(name, 0.0), run())
    _, model = reparam_train(ds, args.epochs)
    if not args.skip_pythae:
        _, pmodel = pythae_train(ds.train, args.epochs)
    print(f"\ntraining: {ds.train.shape[0]} examples x {args.epochs} epochs, best of {args.rounds} "
          f"interleaved rounds")
    bf16 = rows.get("reparam bf16")
    print(f"{'trainer':<20}{'examples/s':>12}{'reparam speed-up':>18}"
          + ("" if bf16 is None else f"{'bf16 speed-up':>15}"))
    for name, rate in rows.items():
        print(f"{name:<20}{rate:>12.0f}{rows['reparam'] / rate:>18.2f}"
              + ("" if bf16 is None else f"{bf16 / rate:>15.2f}"))

    ev: dict[str, float] = {}
    for _ in range(args.rounds):  # interleaved rounds, best rate of each evaluator
        t0 = time.perf_counter()
        ours = -log_likelihood(model, x_eval, k=args.k, generator=torch.Generator().manual_seed(0))
        ev["reparam"] = max(ev.get("reparam", 0.0), args.eval_n / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        base = batched_nll(model, x_eval, args.k)
        ev["batched"] = max(ev.get("batched", 0.0), args.eval_n / (time.perf_counter() - t0))
    if not args.skip_pythae:
        xp = x_eval[:args.pythae_eval_n]
        t0 = time.perf_counter()
        pnll = -pmodel.get_nll(xp, n_samples=args.k, batch_size=100)
        ev["pythae get_nll"] = args.pythae_eval_n / (time.perf_counter() - t0)
    print(f"\nIS evaluation, k={args.k}: reparam NLL {ours.mean():.2f}, batched NLL {base.mean():.2f} "
          f"({args.eval_n} test images, seeded random subset)"
          + ("" if args.skip_pythae else f"; pythae NLL {pnll:.2f} on its own model, "
             f"{args.pythae_eval_n} images"))
    print(f"{'evaluator':<16}{'examples/s':>12}{'reparam speed-up':>18}")
    for name, rate in ev.items():
        print(f"{name:<16}{rate:>12.2f}{ev['reparam'] / rate:>18.2f}")


if __name__ == "__main__":
    main()
