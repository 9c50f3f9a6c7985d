"""``spiffctl doctor``: the engine (:mod:`.engine`) and the checks it runs (:mod:`.checks`)."""
