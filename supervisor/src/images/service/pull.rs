//! `pull`: resolve a reference on its registry, fetch what is missing, unpack, name it.
//! (Owner: the registry engineer.)
