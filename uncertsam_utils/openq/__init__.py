"""The paper's open questions answered on the embedded default (notebook 09).

* ``arms``: what is trained (one ``Arm`` per module and seed) and compared, per question;
* ``maps``: the maps a fusion module is fed (the Laplace entropy, the ones map, combined maps);
* ``pool``: the training data every arm shares (fit/train and the domains' val images, encoded once,
  first passes per seed) and the training of one arm;
* ``run``: every arm trained (or read from the cache) and scored on the test domains;
* ``report``: the tables, seed-aware comparisons, scorecard rows and sentences.
"""
