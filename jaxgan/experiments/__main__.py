"""`python -m jaxgan.experiments EXPERIMENT --workdir=W [...]`: one command per paper table.

  diversity, augmentation   "How good is my GAN?" (jaxgan/experiments/how_good.py)
  transfer                  Transferring GANs' tables (jaxgan/experiments/transfer.py)
  dcgan_features            DCGAN's critic as a feature extractor (experiments/dcgan_features.py)
  nearest                   fakes beside their nearest training images (experiments/nearest.py)
  cyclegan_ablation         CycleGAN's loss ablation, Table 4 (experiments/cyclegan_ablation.py)
  pggan_table1              PGGAN's Table 1 rows (a)-(h), SWD and MS-SSIM (experiments/pggan_table1.py)

Each module's docstring holds its command line, outputs and what each row means.
"""

from jaxgan.experiments import cli

if __name__ == "__main__":
    cli.run()
