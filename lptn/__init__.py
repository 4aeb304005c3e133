"""LPTN photo enhancement: the network, its training, and the tools that apply it to photos
(``lptn.photo``, ``lptn.video``, ``lptn.serve``); see ARCHITECTURE.md for the layout."""
