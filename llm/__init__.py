"""expunge.llm: auditing (and unlearning) Hugging Face causal language models.

Modules (flat; none imports Ray: Ray calls go through :mod:`expunge.runtime`):

* :mod:`~expunge.llm.models`: loading a causal LM from a directory or (online) the hub, with
  ``trust_remote_code`` off unless asked; a tiny byte-level GPT-2 built from config, whose tokenizer
  is a standard Hugging Face tokenizer (bytes as tokens); tokenizer / model fingerprints and checks.
* :mod:`~expunge.llm.data`: labelled text datasets (member / unlearned / nonmember) through HF
  ``datasets``, chunking into word or token windows, population sets.
* :mod:`~expunge.llm.scoring`: one batched, length-sorted pass per (model, dataset) for per-token
  log-probabilities and Min-K%++ moments, cached in memory and in the artifact store; the naive loop.
* :mod:`~expunge.llm.attacks`: the attack registry (loss, zlib, lowercase, Min-K%, Min-K%++, ratio,
  LiRA-On, RMIA-On, IAM-On), pure functions on arrays over :mod:`expunge.metrics`.
* :mod:`~expunge.llm.evaluate`: AUC / TPR at low FPR / bootstrap CIs / ScoreUI tables and ROC plots.
* :mod:`~expunge.llm.audit`: one audit (target, fit, reference models; which passes are needed).
* :mod:`~expunge.llm.unlearn`: gradient ascent, gradient difference, NPO, SimNPO and RMU, each with
  a search space (optionally LoRA via peft).
* :mod:`~expunge.llm.artifacts`: models in the artifact store via ``save_pretrained``.
* :mod:`~expunge.llm.parallel`: scoring actors and unlearning tasks, run through :mod:`expunge.runtime`.
* :mod:`~expunge.llm.corpus`: seeded canary corpora (tests, benchmarks); :mod:`~expunge.llm.train`: the
  training loop of tiny models.
* :mod:`~expunge.llm.tofu`: an offline miniature of TOFU (fictitious authors, QA pairs with
  paraphrased and perturbed answers, forget / retain / holdout splits, world facts, CPython's
  documentation topics as general text).
* :mod:`~expunge.llm.qa_metrics`: TOFU's probability, ROUGE-L, truth ratio, forget quality and model
  utility and MUSE's privleak, pure functions and their registry; :mod:`~expunge.llm.qa_scoring`:
  answer-token log-probabilities (cached) and greedy answers for them.
* :mod:`~expunge.llm.benchmarks`: loaders for TOFU's QA JSON and MUSE-style plain text.
* Stages, called by the thin jobs: :mod:`~expunge.llm.audit_run` (``llm-audit``),
  :mod:`~expunge.llm.unlearn_run` with :mod:`~expunge.llm.unlearn_data` and
  :mod:`~expunge.llm.unlearn_audit` (``llm-unlearn``), :mod:`~expunge.llm.demo_run` (``llm-demo``).

Jobs: ``python -m expunge.jobs.llm_demo``, ``python -m expunge.jobs.llm_audit``,
``python -m expunge.jobs.bench_llm``.
"""
from expunge.llm.models import byte_tokenizer, load_causal_lm, tiny_gpt2

__all__ = ["byte_tokenizer", "load_causal_lm", "tiny_gpt2"]
