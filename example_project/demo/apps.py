from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "example_project.demo"
    label = "factpulse_demo"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import receivers

        receivers.connect()
