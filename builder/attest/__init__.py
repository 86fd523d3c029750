"""What a build says about its image: an SBOM and a provenance statement, attached to it as OCI referrers.

Owns: finding the package databases in the image's layers (`image_files`),
reading them into packages (`packages`: dpkg, apk, Python distributions),
the SPDX 2.3 document (`spdx`), the SLSA v1 provenance (`provenance`), and
making, writing and attaching both (`publish`; registry/referrers.py does
the pushing). The engine hands it the build's facts after the image is
delivered; nothing here changes the image.

May import: `builder.frontend` (the plan, proxy args), `builder.steps` (URL
redaction), `builder.image` (the image value, extracting its layers),
`layers/`, `registry/` and `oci/`. Not the execution, the cache or the engine.
"""
