"""The `diffusers` synthesis backend (cluster scale): SUGAR's data pipeline (METHOD_NOTES.md §1.5), one stage a module.

    subjects.py   where subjects come from: a CSV, a folder, or procedural sprite subjects
    prompts.py    captions and text-to-image prompts: attribute changes and motions that suit the category
    t2i.py        subject-driven text-to-image (img2img on the subject image; the paper's Toffee is not public)
    outpaint.py   pad to the video's aspect and size; an inpainting pipeline fills the padding when configured
    i2v.py        image-to-video (e.g. CogVideoX image-to-video)
    segment.py    Grounded SAM: Grounding DINO box for the subject noun, then a SAM mask inside it
    backend.py    `DiffusersBackend`: plan jobs, run the stages for one job

Every model is a diffusers/transformers folder named in `synthesize.scale` (a local path or an object-store
URI) and loads lazily, once per backend instance. Module level stays light: torch, diffusers and
transformers are imported inside functions.
"""
