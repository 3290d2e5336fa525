//! `docker rmi` of an image that containers use, by docker's rules: the last name of such an
//! image is removed only with force (and then only untagged, the image stays for its
//! containers); an image ID is refused while a running container uses it, and while a
//! stopped one does unless forced.
use super::{familiar_of, short_image_id, Error, ImageService, Removed, UNTAGGED};
use crate::images::metadata::ImageRecord;
use crate::images::reference::Reference;

/// A container that uses an image.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub running: bool,
}

impl ImageService {
    /// What `rmi name_or_id` does when `users` use the image: docker's 409, an untag that
    /// keeps the image (dangling), or `None` when the ordinary removal applies.
    pub fn remove_in_use(
        &self,
        name_or_id: &str,
        force: bool,
        users: &[User],
    ) -> Result<Option<Vec<Removed>>, Error> {
        let Some(first) = users.first() else {
            return Ok(None);
        };
        let _names = self.lock_names();
        let image = self.resolve(name_or_id)?;
        let short = short_image_id(&image.id);
        let by_name = Reference::parse(name_or_id)
            .ok()
            .and_then(|r| image.records.iter().find(|rec| rec.name == r.to_string()))
            .cloned();
        let named = image
            .records
            .iter()
            .filter(|r| !r.name.starts_with(UNTAGGED))
            .count();
        let conflict = |m: String| Err(Error::Conflict(format!("conflict: unable to {m}")));
        match by_name {
            Some(_) if named > 1 => Ok(None),
            Some(_) if !force => conflict(format!(
                "remove repository reference \"{name_or_id}\" (must force) - container {} is using its referenced image {short}",
                short_id(&first.id)
            )),
            Some(record) => {
                let dangling = ImageRecord {
                    name: format!("{UNTAGGED}{}", image.id),
                    repo_digest: None,
                    ..record.clone()
                };
                self.metadata
                    .change_images(&[dangling], std::slice::from_ref(&record.name))?;
                Ok(Some(vec![Removed::Untagged(familiar_of(&record.name))]))
            }
            None => match users.iter().find(|u| u.running) {
                Some(u) => conflict(format!(
                    "delete {short} (cannot be forced) - image is being used by running container {}",
                    short_id(&u.id)
                )),
                None if !force => conflict(format!(
                    "delete {short} (must be forced) - image is being used by stopped container {}",
                    short_id(&first.id)
                )),
                None => Ok(None),
            },
        }
    }
}

fn short_id(id: &str) -> &str {
    &id[..12.min(id.len())]
}
