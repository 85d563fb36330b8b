"""The modules of a VideoMaker pipeline from its config (METHOD_NOTES §2.1, §2.7): pretrained ones from local
folders, or tiny random ones built in code when a path is null (nothing is fetched from a hub).

Frozen tiny modules (VAE, text encoder) are a function of the config alone, as model.encoders' are; the UNet
is drawn from the pipeline's seed.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from ..config import ModelConfig, VideoMakerConfig
from ..encoders import TINY_SEED, TINY_VOCAB_SIZE, tiny_word_tokenizer
from .attention import install_pisa
from .unet import tiny_unet


def _local(path: str, field: str) -> Path:
    """A configured folder, checked: model/ reads local folders only (the steps fetch s3:// URIs first)."""
    if "://" in path:
        raise ValueError(f"model.videomaker.{field}={path} is a URI; the step that builds the pipeline must make it "
                         "local first (components.storage.local_path)")
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"model.videomaker.{field}={path} is not a folder; point it at a local copy")
    return folder


def _seeded(build, seed: int):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def _frozen(module: nn.Module) -> nn.Module:
    return module.requires_grad_(False).eval()


def build_vae(vm: VideoMakerConfig, sample_size: int):
    """diffusers' AutoencoderKL: SD1.5's from `vae_path`, or a tiny random one (4 latent channels, as SD's)."""
    from diffusers import AutoencoderKL

    if vm.vae_path:
        return _frozen(AutoencoderKL.from_pretrained(_local(vm.vae_path, "vae_path"), use_safetensors=True))
    blocks = len(vm.vae_block_out_channels)
    return _frozen(_seeded(lambda: AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * blocks,
        up_block_types=("UpDecoderBlock2D",) * blocks, block_out_channels=vm.vae_block_out_channels,
        layers_per_block=1, latent_channels=4, norm_num_groups=8, sample_size=sample_size), TINY_SEED + 3))


def build_text_encoder(vm: VideoMakerConfig):
    """transformers' CLIPTextModel: SD1.5's from `text_encoder_path`, or a tiny random one over the tiny word
    vocabulary (ids as model.encoders.tiny_word_tokenizer: pad 0, eos 1)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    if vm.text_encoder_path:
        return _frozen(CLIPTextModel.from_pretrained(_local(vm.text_encoder_path, "text_encoder_path"),
                                                     use_safetensors=True))
    conf = CLIPTextConfig(vocab_size=TINY_VOCAB_SIZE, hidden_size=vm.text_hidden_size,
                          intermediate_size=vm.text_intermediate_size, num_hidden_layers=vm.text_num_layers,
                          num_attention_heads=vm.text_num_heads, max_position_embeddings=vm.max_length,
                          pad_token_id=0, bos_token_id=1, eos_token_id=1)
    return _frozen(_seeded(lambda: CLIPTextModel(conf), TINY_SEED + 4))


def build_tokenizer(vm: VideoMakerConfig):
    """The CLIP tokenizer from `tokenizer_path`, or the project's tiny word tokenizer (built in code)."""
    from transformers import AutoTokenizer

    if vm.tokenizer_path:
        return AutoTokenizer.from_pretrained(_local(vm.tokenizer_path, "tokenizer_path"))
    return tiny_word_tokenizer()


def build_unet(cfg: ModelConfig, seed: int):
    """AnimateDiff's UNetMotionModel with PISA installed (§2.2):
    - unet_path a UNetMotionModel folder (a trained VideoMaker's unet/): loaded as is;
    - unet_path an SD1.5 UNet2DConditionModel folder: inflated with the MotionAdapter at motion_adapter_path
      (`UNetMotionModel.from_unet2d`, as AnimateDiffPipeline does);
    - null: `tiny_unet(seed)`, its cross-attention as wide as the tiny text encoder.
    """
    from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel

    vm = cfg.videomaker
    if vm.unet_path is None:
        return tiny_unet(seed=seed, sample_size=cfg.latent_size[0], cross_attention_dim=vm.text_hidden_size)
    folder = _local(vm.unet_path, "unet_path")
    kind = json.loads((folder / "config.json").read_text()).get("_class_name") if (folder / "config.json").is_file() \
        else None
    if kind == "UNetMotionModel":
        unet = UNetMotionModel.from_pretrained(folder, use_safetensors=True)
    elif kind == "UNet2DConditionModel":
        if not vm.motion_adapter_path:
            raise ValueError(f"model.videomaker.unet_path={vm.unet_path} is an SD UNet2DConditionModel; set "
                             "model.videomaker.motion_adapter_path to the MotionAdapter that inflates it")
        adapter = MotionAdapter.from_pretrained(_local(vm.motion_adapter_path, "motion_adapter_path"),
                                                use_safetensors=True)
        unet = UNetMotionModel.from_unet2d(UNet2DConditionModel.from_pretrained(folder, use_safetensors=True), adapter)
    else:
        raise ValueError(f"model.videomaker.unet_path={vm.unet_path} holds no UNetMotionModel or "
                         f"UNet2DConditionModel config.json (found {kind!r})")
    install_pisa(unet)
    return unet


def build_scheduler(vm: VideoMakerConfig):
    """diffusers' DDIMScheduler as VideoMaker's inference configures it (§2.7)."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(**vm.scheduler.model_dump())
