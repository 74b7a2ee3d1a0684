"""The reproduction report page: it only reads what the chapters recorded (``sgdbayes.report`` renders it)."""

from sgdbayes.params import Choice, Spec

PARAMETERS = Spec(profile=Choice("smoke", "default", "paper"))
