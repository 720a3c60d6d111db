"""Field surveys with ODK, offline: forms (XLSForm/XForm), the OpenRosa server, submissions, imports."""
