"""Does a route take the subject image up within a budget? A fast, single-process probe (no DeepSpeed,
no MLflow): train SUGAR on sprites for --seconds from scratch or from a transformer state dict (--base),
then sample held-out subjects with the image and with it dropped (same noise) and print the paired image
effect on identity and its parts: [with, dropped, mean difference, 95 % half-width (normal)].

    python benchmarks/uptake_probe.py --name b_base --base BASE.safetensors --seconds 150 \
        --set synthesize.caption_colour=false

It mirrors the train worker's loss (x0 target, condition dropout, warm-up) with knobs the worker does not
have (--high-frac/--high-t: a share of each batch from the high-noise band; --cond-lr: a learning-rate
multiplier for SUGAR's projections; --t2v with design (a): a text-to-video pretraining run, --save-base).
Results are appended to <--out>/results.jsonl. The pipeline's own numbers come from the evaluate step;
this is for finding a route quickly (docs/sugar_mechanism.md, "Route-finding at the demo's budget").
"""
import argparse, json, os, sys, time
import numpy as np, torch
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from components.config import load_config
from components import sprites as S
from components.synthesize.sprites_backend import plan_specs
from components.sprites.scoring import sprites_scores
from model.pipeline import SugarPipeline
from model.conditioning import condition_dropout
from model.noise import diffusion_noise

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--name", required=True)
ap.add_argument("--set", action="append", default=[])
ap.add_argument("--seconds", type=float, default=150)
ap.add_argument("--steps", type=int, default=10**9)
ap.add_argument("--base", default=None, help="transformer state dict to start from")
ap.add_argument("--save-base", default=None, help="save the transformer state dict here (pretrain)")
ap.add_argument("--t2v", action="store_true", help="pretrain: image always dropped")
ap.add_argument("--high-frac", type=float, default=0.0, help="share of each batch drawn from t >= high-t")
ap.add_argument("--high-t", type=int, default=700)
ap.add_argument("--cond-lr", type=float, default=1.0, help="lr multiplier for the conditioner")
ap.add_argument("--freeze-base", type=float, default=0.0, help="freeze the first fraction of blocks")
ap.add_argument("--gain-every", type=int, default=0, help="print the held-out x0 gain every N steps")
ap.add_argument("--eval-n", type=int, default=48)
ap.add_argument("--batch", type=int, default=16)
ap.add_argument("--lr", type=float, default=1e-3)
ap.add_argument("--out", default="bench-out/uptake-probe")
ap.add_argument("--oracle-colour", action="store_true",
                help="diagnostic: the CLIP token is a one-hot of the subject's palette colour instead of CLIP features")
ap.add_argument("--subject-weight", type=float, default=0.0,
                help="loss weight 1 + this on the subject's pixels (ground-truth masks), 1 elsewhere")
ap.add_argument("--params", default=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                 "params.yaml"))
a = ap.parse_args()
torch.set_num_threads(2)
os.makedirs(a.out, exist_ok=True)
cfg = load_config(a.params, ["model.transformer_path=null", *a.set])
m = cfg.model
pipe = SugarPipeline.from_config(m, seed=0)
if a.base:
    from safetensors.torch import load_file
    pipe.denoiser.load_state_dict({**pipe.denoiser.state_dict(), **load_file(a.base)})  # the base's stock weights
t0 = time.time()
specs = [s for s, split in plan_specs(cfg) if split == "train"]
vids, ids, masks = [], [], []
for s in specs:
    f, mk = S.render(s, m.height, m.width, m.num_frames)
    ids.append(S.identity_image(s, m.height, m.width, m.num_frames, f, mk)); vids.append(f); masks.append(mk)
video = torch.from_numpy(np.stack(vids)).permute(0, 1, 4, 2, 3).float() / 127.5 - 1
with torch.no_grad():
    lat = pipe.codec.encode(video)
    wmap = 1 + a.subject_weight * torch.from_numpy(np.stack(masks)).float()[:, :, None].expand(-1, -1, 3, -1, -1)
    wlat = pipe.codec.encode(wmap)  # the same space-to-depth as the frames: weight per latent element
    d, c = zip(*[pipe.encode_image(np.stack(ids[i:i+64])) for i in range(0, len(ids), 64)])
    dino, clip = torch.cat(d), torch.cat(c)
    text = torch.cat([pipe.encode_prompt([s.caption for s in specs[i:i+64]]) for i in range(0, len(specs), 64)])
def oracle(clip_feats, spec_list):
    out = torch.zeros_like(clip_feats)
    for i, sp in enumerate(spec_list):
        out[i, 0, list(S.PALETTE).index(sp.subject.colour)] = 5.0
    return out
if a.oracle_colour:
    clip = oracle(clip, specs)
noise_rng = np.random.default_rng(0)
def draw_noise(shape, rng):
    """The model's diffusion noise (model.noise), as the train worker draws it."""
    return torch.from_numpy(diffusion_noise(rng, tuple(shape), **m.noise_args))
print(f"data {len(specs)} samples in {time.time()-t0:.1f}s", flush=True)
den, sched = pipe.denoiser, pipe.scheduler
# eval
sc = cfg.synthesize
held = S.heldout_specs(cfg.evaluate.seed, a.eval_n, sc.caption_colour, sc.subject_size, sc.motions, sc.caption_position)
gen_h = [S.generate(s, m.height, m.width, m.num_frames) for s in held]
hid = np.stack([g[0] for g in gen_h])
# Does the trained denoiser use the image? Held-out x0 loss with the image minus with it dropped, per t (same noise).
with torch.no_grad():
    hx0 = pipe.codec.encode(torch.from_numpy(np.stack([g[1] for g in gen_h])).permute(0, 1, 4, 2, 3).float() / 127.5 - 1)
    hd, hc = pipe.encode_image(hid)
    if a.oracle_colour:
        hc = oracle(hc, held)
    ht = pipe.encode_prompt([s.caption for s in held])
    hn = draw_noise(hx0.shape, np.random.default_rng(7))
    n_held = len(held); one, zero = torch.ones(n_held), torch.zeros(n_held)
def x0_gain():
  gain = {}
  with torch.no_grad():
    for tv in (999, 900, 800, 600, 400, 200):
      tt = torch.full((n_held,), tv)
      xt = sched.add_noise(hx0, hn, tt)
      with_i = ((den(xt, tt, hd, hc, ht, one, one, one) - hx0) ** 2).mean().item()
      without = ((den(xt, tt, hd, hc, ht, zero, zero, one) - hx0) ** 2).mean().item()
      gain[tv] = round(without - with_i, 5)
  return gain
blocks = den.transformer_blocks
nf = int(round(a.freeze_base * len(blocks)))
for i, b in enumerate(blocks):
    b.requires_grad_(i >= nf)
cond_params = list(den.conditioner.parameters())
ids_c = {id(p) for p in cond_params}
rest = [p for p in den.parameters() if p.requires_grad and id(p) not in ids_c]
opt = torch.optim.AdamW([{"params": rest, "lr": a.lr}, {"params": [p for p in cond_params if p.requires_grad], "lr": a.lr * a.cond_lr}], weight_decay=0)
base_lrs = [g["lr"] for g in opt.param_groups]
gen = torch.Generator().manual_seed(0)
cc = m.conditioning
t0 = time.time(); step = 0; losses = []
den.train()
while time.time() - t0 < a.seconds and step < a.steps:
    w = min(1.0, (step + 1) / 100)
    for g, lr in zip(opt.param_groups, base_lrs): g["lr"] = lr * w
    idx = torch.randint(len(specs), (a.batch,), generator=gen)
    x0 = lat[idx]; noise = draw_noise(x0.shape, noise_rng)
    T = sched.config.num_train_timesteps
    t = torch.randint(0, T, (a.batch,), generator=gen)
    nh = int(round(a.high_frac * a.batch))
    if nh: t[:nh] = torch.randint(a.high_t, T, (nh,), generator=gen)
    noisy = sched.add_noise(x0, noise, t)
    kd, kc, kt = condition_dropout(a.batch, cc.drop_dino, cc.drop_clip, cc.drop_text, generator=gen)
    if a.t2v: kd, kc = torch.zeros(a.batch), torch.zeros(a.batch)
    out = den(noisy, t, dino[idx], clip[idx], text[idx], kd, kc, kt)
    loss = (wlat[idx] * (out - x0) ** 2).mean() / wlat[idx].mean()
    opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(den.parameters(), 1.0); opt.step()
    losses.append(loss.item()); step += 1
    if step % 200 == 0: print(f"step {step} loss {np.mean(losses[-200:]):.4f} {time.time()-t0:.0f}s", flush=True)
    if a.gain_every and step % a.gain_every == 0:
        den.eval(); print(f"step {step} x0 gain by t {x0_gain()}", flush=True); den.train()
train_s = time.time() - t0
den.eval()
if a.save_base:
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in den.transformer.state_dict().items()}, a.save_base)
gain = x0_gain()
print("x0 loss gain from the image (dropped - with) by t:", gain, flush=True)
caps = [s.caption for s in held]
t1 = time.time()
res = {}
if a.oracle_colour:  # the pipeline encodes images itself: hand it the oracle token instead
    _encode = pipe.encode_image
    def _oracle_encode(images, _held=iter([])):
        d, c = _encode(images)
        return d, oracle(c, _batch_specs)
    pipe.encode_image = _oracle_encode
for name, kw in (("image", {}), ("dropped", {"use_image": False})):
    chunks = []
    for i in range(0, len(held), 16):
        _batch_specs = held[i:i + 16]
        chunks.append(pipe(hid[i:i+16], caps[i:i+16], seed=1234 + i, num_inference_steps=20, **kw).frames)
    vids = np.concatenate(chunks)
    res[name] = [sprites_scores(v, s) for v, s in zip(vids, held)]
    if name == "image": np.save(os.path.join(a.out, f"{a.name}_vids.npy"), vids)
def arr(name, k): return np.array([r[k] for r in res[name]], float)
out = {"name": a.name, "loss_gain_by_t": gain, "steps": step, "train_s": round(train_s), "final_loss": float(np.mean(losses[-100:]))}
for k in ("identity", "identity_shape", "identity_colour", "identity_texture", "motion", "attribute"):
    x, y = arr("image", k), arr("dropped", k); ok = ~np.isnan(x) & ~np.isnan(y)
    dlt = x[ok] - y[ok]
    out[k] = [round(float(np.nanmean(x)), 3), round(float(np.nanmean(y)), 3), round(float(dlt.mean()), 3), round(float(1.96 * dlt.std(ddof=1) / np.sqrt(len(dlt))), 3)]
print(json.dumps(out), flush=True)
with open(os.path.join(a.out, "results.jsonl"), "a") as f: f.write(json.dumps(out) + "\n")
