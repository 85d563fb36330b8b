"""The KFP pipeline chaining the steps, its local runner (kfp.local), compiler and remote submitter, and the
`vidcustom` CLI. Imports point pipelines -> components -> model."""
