"""The paper's open questions answered on the embedded default (notebook 09).

* ``arms``: what is trained (one ``Arm`` per module and seed) and compared, per question;
* ``maps``: the maps a fusion module is fed (the Laplace entropy, the ones map, combined maps);
* ``train``: the training of one arm, and the refinement function of a trained one;
* ``pool``: the training data every arm shares (fit/train and the domains' val images, encoded once,
  first passes per seed);
* ``run``: every arm trained (or read from the cache) and scored on the test domains.

The tables, comparisons, scorecard rows and sentences are ``analysis.open_questions``'; the figure is
``plots.open_questions``' (reporting code: editing it keeps the cached arms).
"""
